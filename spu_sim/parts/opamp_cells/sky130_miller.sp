* sky130_miller: two-stage Miller-compensated op-amp in SkyWater sky130 (1.8 V core devices sky130_fd_pr__nfet_01v8 /
* pfet_01v8), pins inp inn out vdd vss, for spu-sim's integrators (supplies +/-0.9 V around the SPU's ground).
*
* Design note. Load: an SPU op-amp drives its integrator capacitor (its feedback path, 100 pF .. 1 nF) and the
* resistor arrays of the other integrators (each row a few 10 kohm .. 100 kohm to a virtual ground), so the output
* stage is a class-A PMOS common source biased at about 200 uA (20x the reference): it sources and sinks about
* +/-50 uA, +/-0.5 V into 10 kohm.
*   reference  IBIAS 10 uA into the diode MB (an ideal current source: on a chip it is a bandgap or beta
*              multiplier); W/L in um (the sky130 models set .option scale=1u)
*   stage 1    NMOS pair M1 (inn) / M2 (inp) (W/L 20/1, 10 uA each) with PMOS mirror load M3/M4 (8/1), NMOS tail M5 (8/2, 20 uA)
*   stage 2    PMOS common source M6 (160/1: 20 x M4, so V(d2) = V(d1) and no systematic offset) with NMOS sink
*              M7 (80/2, 200 uA)
*   compensation  CC 3 pF Miller capacitor in series with RZ 2 kohm (about 1/gm6: moves the right-half-plane
*              zero to high frequency)
* Expected: GBW = gm1 / (2 pi CC), quiescent current 10 + 20 + 200 uA. Measured by spu-sim characterise (tt, 27 C,
* configs/characterise_sky130_miller.yaml): gain 1.23e4 (82 dB) unloaded, 3.4e3 into 20 kohm (r_out 53 kohm, falling
* to 618 ohm above 846 Hz: CC shunts the output stage above the dominant pole),
* GBW 10 MHz, phase margin 79 degrees into 10 pF, swing -0.85 V .. +0.84 V into 20 kohm (10 mV from linear),
* offset -0.14 mV, 251 uA, e_n 26 nV/rtHz white with a 1/f corner near 90 kHz (docs/opamp_cells.md).
.subckt sky130_miller inp inn out vdd vss
IBIAS vdd nb 10u
XMB nb nb vss vss sky130_fd_pr__nfet_01v8 w=4 l=2
XM5 tail nb vss vss sky130_fd_pr__nfet_01v8 w=8 l=2
XM1 d1 inn tail vss sky130_fd_pr__nfet_01v8 w=20 l=1
XM2 d2 inp tail vss sky130_fd_pr__nfet_01v8 w=20 l=1
XM3 d1 d1 vdd vdd sky130_fd_pr__pfet_01v8 w=8 l=1
XM4 d2 d1 vdd vdd sky130_fd_pr__pfet_01v8 w=8 l=1
XM6 out d2 vdd vdd sky130_fd_pr__pfet_01v8 w=160 l=1
XM7 out nb vss vss sky130_fd_pr__nfet_01v8 w=80 l=2
RZ d2 cz 2k
CC cz out 3p
.ends sky130_miller
