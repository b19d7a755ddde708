"""The numerical benchmarks of the paper on its CNN: KAR (keep-and-retrain, on pixels
and on conv features) and occlusion, as grids of seeded, resumable jobs
(:mod:`.jobs`), with the rankings computed by ``explainers`` (:mod:`.rankings`)."""
