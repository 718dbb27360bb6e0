"""Thermodynamic Bayesian inference (Aifer et al. 2024): posterior problems, references, the
``spu-sim posterior`` run and the scaling experiment.

    problem.py     problem kinds gaussian_posterior, logistic_posterior (registered on import)
    data.py        X / y sources: .npy, inline, random with a seed, scikit-learn data sets
    reference.py   exact Gaussian posterior; Laplace approximation; emcee reference sampler
    stats.py       autocorrelation, integrated autocorrelation time, effective sample size
    run.py         spu-sim posterior CONFIG --out DIR (samples.npz, metrics.json, plots)
    plots.py       marginals, pair plot, autocorrelation, error vs sampling time
    scaling.py     mixing time and energy against d (the ln d and d ln d claims)

The circuits are the topologies posterior_gaussian and posterior_logistic (spu_sim.topologies).
"""
