namespace GpuCommons.Scheduling.Internal;

/// <summary>
/// A pool's member nodes in the order they joined, with O(1) add and remove (a <see cref="List{T}"/> paid a scan and
/// a shift of the whole general pool for every node a reservation took or gave back). A removal leaves a hole that
/// iteration skips; holes are squeezed out when the array would grow. Positions live in an array shared by all pools
/// of an engine, which works because a node is a member of exactly one pool at a time.
/// </summary>
internal sealed class MemberList(int[] positions) : IEnumerable<int>
{
    private const int Hole = -1;
    private int[] _items = new int[4];
    private int _end;

    public int Count { get; private set; }

    public void Add(int item)
    {
        if (_end == _items.Length)
        {
            if (Count <= _items.Length / 2)
            {
                Squeeze();
            }
            else
            {
                Array.Resize(ref _items, _items.Length * 2);
            }
        }

        positions[item] = _end;
        _items[_end++] = item;
        Count++;
    }

    public bool Remove(int item)
    {
        var i = positions[item];
        if (i < 0 || i >= _end || _items[i] != item)
        {
            return false;
        }

        _items[i] = Hole;
        positions[item] = -1;
        Count--;
        while (_end > 0 && _items[_end - 1] == Hole)
        {
            _end--;
        }

        return true;
    }

    public int[] ToArray()
    {
        var copy = new int[Count];
        var w = 0;
        for (var i = 0; i < _end; i++)
        {
            if (_items[i] != Hole)
            {
                copy[w++] = _items[i];
            }
        }

        return copy;
    }

    public Enumerator GetEnumerator() => new(this);

    IEnumerator<int> IEnumerable<int>.GetEnumerator() => ((IEnumerable<int>)ToArray()).GetEnumerator();

    System.Collections.IEnumerator System.Collections.IEnumerable.GetEnumerator() => ToArray().GetEnumerator();

    private void Squeeze()
    {
        var w = 0;
        for (var i = 0; i < _end; i++)
        {
            var item = _items[i];
            if (item != Hole)
            {
                positions[item] = w;
                _items[w++] = item;
            }
        }

        _end = w;
    }

    public struct Enumerator(MemberList list)
    {
        private int _i = -1;

        public readonly int Current => list._items[_i];

        public bool MoveNext()
        {
            while (++_i < list._end)
            {
                if (list._items[_i] != Hole)
                {
                    return true;
                }
            }

            return false;
        }
    }
}
