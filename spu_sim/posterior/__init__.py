"""Thermodynamic Bayesian inference (Aifer et al. 2024): the ``spu-sim posterior`` run and what it reads.

    stats.py       autocorrelation, integrated autocorrelation time, effective sample size
    run.py         spu-sim posterior CONFIG --out DIR (samples.npz, metrics.json, plots)
    plots.py       marginals, pair plot, autocorrelation, error vs sampling time

The problem kinds gaussian_posterior and logistic_posterior, their data sources and the exact, Laplace and
emcee references are in spu_sim.problems (posterior.py, data.py, posterior_reference.py); the circuits are
the posterior topologies (spu_sim.topologies); the scaling experiment is spu_sim.experiments.posterior_scaling.
"""
