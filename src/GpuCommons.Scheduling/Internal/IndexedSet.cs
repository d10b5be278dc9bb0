namespace GpuCommons.Scheduling.Internal;

/// <summary>
/// A set of small integers with O(1) add, remove and pick. Positions live in an array shared by all sets
/// of one family, which works because an item is in at most one set of a family at a time.
/// </summary>
internal sealed class IndexedSet(int[] positions)
{
    private int[] _items = new int[4];

    public int Count { get; private set; }

    public int this[int i] => _items[i];

    public void Add(int item)
    {
        if (Count == _items.Length)
        {
            Array.Resize(ref _items, _items.Length * 2);
        }

        positions[item] = Count;
        _items[Count++] = item;
    }

    public void Remove(int item)
    {
        var i = positions[item];
        var last = _items[--Count];
        _items[i] = last;
        positions[last] = i;
        positions[item] = -1;
    }

    public bool Contains(int item)
    {
        var i = positions[item];
        return i >= 0 && i < Count && _items[i] == item;
    }
}
