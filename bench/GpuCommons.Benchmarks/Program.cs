using BenchmarkDotNet.Running;

BenchmarkSwitcher.FromAssembly(typeof(GpuCommons.Benchmarks.SchedulingCycleBenchmarks).Assembly).Run(args);
