"""NumPy natural-gradient training with the SPU in the loop (``spu-sim train``).

Entry points: ``spu_sim.train.loop.run_training(config, out_dir)`` and
``spu_sim.train.loop.run_training_from_file(config_path, out_dir)``; plots from saved files:
``spu_sim.train.plots.plot_run(out_dir)``. Chain: config -> data -> model -> optimisers (spu_sim.optim)
-> history/summary files -> plots.
"""
