"""Shared circuit parts: what every topology builds its circuit from (layer L4: below spu_sim.topologies, above
spu_sim.circuit, spu_sim.config and spu_sim.ideal; a part never imports a topology).

    config.py              the circuit sections the parts read: tolerance, quantization, temperature (every
                           topology), integrator element ranges and the op-amp model (the op-amp topologies)
    element_values.py      what the fab delivers: quantisation, tolerance / mismatch draws, temperature factors
    opamp.py               the op-amp: its model parameters and ``opamp_elements``, the one function through which
                           every non-ideal op-amp of every topology is instantiated
    subckt_opamp.py        an op-amp that is a SPICE subcircuit: the designer's own (``model: subckt``: include, pin
                           map, pre-flight scan of the file) and the hook for shipped transistor-level cells
    amplifiers.py          the stages built of an op-amp: integrators, inverters, summers (ideal nullor or macromodel)
    dacs.py                the DACs of b (and y): a held voltage through an input resistor into a summing node
    noise_dacs.py          the noise DACs: seeded unit-intensity samples played by XSPICE filesources
    intrinsic_noise.py     resistor thermal noise and op-amp e_n / i_n / 1-f noise as seeded sources added to a
                           built circuit (transient) or in small-signal form (.noise)
    summing_node_noise.py  the small-signal noise hooks of an integrator network whose OU noise enters at the
                           summing nodes (spu_sim.analyses.noise)
    settling.py            settling time of a linear network, measured and predicted

A topology imports the functions it uses from these modules (no re-exports here).
"""
