using GpuCommons.Core.Tenancy;

namespace GpuCommons.Scheduling.Internal;

/// <summary>
/// Hierarchical fair share over tenant class → organisation → project → user, on usage decayed with a half-life.
/// Effective usage pulls a child towards its parent's: UE = U + (UE_parent − U) × S, where U is the child's share of all
/// usage and S its share among its siblings; the factor is F = 2^(−UE / S_norm), S_norm being the product of S down the
/// path. F is 1 for a tenant with no usage, 0.5 at exactly its share, and falls towards 0 above it.
/// </summary>
internal sealed class FairShare
{
    private const int Types = 5;
    private readonly double[] _typeShares = new double[Types];
    private readonly double[] _typeUsage = new double[Types];
    private readonly List<(int Type, double Shares)> _orgs = [];
    private readonly List<(int Org, double Shares)> _projects = [];
    private readonly List<int> _userProject = [];
    private readonly List<double> _userUsage = [];
    private readonly List<double> _userRunningMilli = [];
    private readonly List<int> _projectUsers = [];
    private double[] _orgUsage = [];
    private double[] _projectUsage = [];
    private double[] _userFactor = [];
    private double[] _orgShareSum = new double[Types];
    private double[] _projShareSumByOrg = [];
    private int _orgsOfType0 = -1;

    public FairShare(IReadOnlyDictionary<OrganisationType, double> typeShares)
    {
        foreach (var (t, s) in typeShares)
        {
            _typeShares[(int)t] = Math.Max(0, s);
        }
    }

    public int UserCount => _userProject.Count;

    public void AddOrganisation(OrganisationType type, double shares) => _orgs.Add(((int)type, shares));

    public void AddProject(int org, double shares)
    {
        _projects.Add((org, shares));
        _projectUsers.Add(0);
    }

    public int AddUser(int project)
    {
        _userProject.Add(project);
        _userUsage.Add(0);
        _userRunningMilli.Add(0);
        _projectUsers[project]++;
        return _userProject.Count - 1;
    }

    public void AddRunning(int user, long milli) => _userRunningMilli[user] += milli;

    /// <summary>Adds usage directly (GPU-seconds × 1000), e.g. restored history.</summary>
    public void AddUsage(int user, double milliSeconds) => _userUsage[user] += milliSeconds;

    /// <summary>Decays past usage by <paramref name="elapsedSeconds"/> and adds what running jobs used meanwhile.</summary>
    public void Advance(double elapsedSeconds, double halfLifeSeconds)
    {
        if (elapsedSeconds <= 0)
        {
            return;
        }

        var decay = Math.Pow(2, -elapsedSeconds / halfLifeSeconds);

        // Running jobs' usage is added with the decay of its midpoint, a close approximation of the integral.
        var midDecay = Math.Pow(2, -elapsedSeconds / 2 / halfLifeSeconds);
        for (var u = 0; u < _userUsage.Count; u++)
        {
            _userUsage[u] = (_userUsage[u] * decay) + (_userRunningMilli[u] * elapsedSeconds * midDecay);
        }
    }

    public double Factor(int user) => user < _userFactor.Length ? _userFactor[user] : 1;

    /// <summary>Copies every user's factor into <paramref name="into"/> (resized to the users known).</summary>
    public void CopyFactors(ref double[] into)
    {
        if (into.Length != _userFactor.Length)
        {
            into = new double[_userFactor.Length];
        }

        _userFactor.CopyTo(into, 0);
    }

    /// <summary>Recomputes every user's factor (once per full cycle).</summary>
    public void Recompute()
    {
        var nOrg = _orgs.Count;
        var nProj = _projects.Count;
        var nUser = _userProject.Count;
        if (_orgUsage.Length != nOrg)
        {
            _orgUsage = new double[nOrg];
        }

        if (_projectUsage.Length != nProj)
        {
            _projectUsage = new double[nProj];
        }

        if (_userFactor.Length != nUser)
        {
            _userFactor = new double[nUser];
        }

        Array.Clear(_orgUsage);
        Array.Clear(_projectUsage);
        Array.Clear(_typeUsage);
        double total = 0;
        for (var u = 0; u < nUser; u++)
        {
            _projectUsage[_userProject[u]] += _userUsage[u];
            total += _userUsage[u];
        }

        for (var j = 0; j < nProj; j++)
        {
            _orgUsage[_projects[j].Org] += _projectUsage[j];
        }

        for (var o = 0; o < nOrg; o++)
        {
            _typeUsage[_orgs[o].Type] += _orgUsage[o];
        }

        if (_orgsOfType0 != nOrg || _projShareSumByOrg.Length != nOrg)
        {
            _orgShareSum = new double[Types];
            _projShareSumByOrg = new double[nOrg];
            foreach (var (t, s) in _orgs)
            {
                _orgShareSum[t] += s;
            }

            foreach (var (o, s) in _projects)
            {
                _projShareSumByOrg[o] += s;
            }

            _orgsOfType0 = nOrg;
        }
        else
        {
            Array.Clear(_projShareSumByOrg);
            foreach (var (o, s) in _projects)
            {
                _projShareSumByOrg[o] += s;
            }
        }

        double typeShareTotal = 0;
        for (var t = 0; t < Types; t++)
        {
            if (_orgShareSum[t] > 0)
            {
                typeShareTotal += _typeShares[t] > 0 ? _typeShares[t] : 1;
            }
        }

        var inv = total > 0 ? 1 / total : 0;
        for (var u = 0; u < nUser; u++)
        {
            var j = _userProject[u];
            var (o, ps) = _projects[j];
            var (t, os) = _orgs[o];
            var st = (_typeShares[t] > 0 ? _typeShares[t] : 1) / Math.Max(typeShareTotal, 1e-12);
            var so = os / _orgShareSum[t];
            var sp = ps / _projShareSumByOrg[o];
            var su = 1.0 / Math.Max(1, _projectUsers[j]);
            var ueT = _typeUsage[t] * inv * (1 - st);
            var ueO = (_orgUsage[o] * inv) + ((ueT - (_orgUsage[o] * inv)) * so);
            var ueP = (_projectUsage[j] * inv) + ((ueO - (_projectUsage[j] * inv)) * sp);
            var ueU = (_userUsage[u] * inv) + ((ueP - (_userUsage[u] * inv)) * su);
            var sNorm = st * so * sp * su;
            _userFactor[u] = sNorm > 0 ? Math.Pow(2, -ueU / sNorm) : 0;
        }
    }
}
