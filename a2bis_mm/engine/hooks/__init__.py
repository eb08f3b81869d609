from .benchmark_hook import BenchmarkHook, peak_memory_mib
