* gf180_miller: two-stage Miller-compensated op-amp in GlobalFoundries GF180MCU (3.3 V devices nfet_03v3 /
* pfet_03v3), pins inp inn out vdd vss, for spu-sim's integrators (supplies +/-1.65 V around the SPU's ground).
*
* Design note. Same architecture and load as sky130_miller (integrator capacitor plus resistor arrays of a few
* 10 kohm .. 100 kohm): class-A PMOS output stage at about 200 uA, +/-1 V into 10 kohm.
*   reference  IBIAS 10 uA into the diode MB (an ideal current source: on a chip a bandgap or beta multiplier)
*   stage 1    NMOS pair M1/M2 (W/L 20u/1u, 10 uA each), PMOS mirror M3/M4 (10u/1u), NMOS tail M5 (10u/2u, 20 uA)
*   stage 2    PMOS common source M6 (2 x 100u/1u) with NMOS sink M7 (100u/2u, 200 uA)
*   compensation  CC 3 pF in series with RZ 2 kohm (about 1/gm6)
* Measured by spu-sim characterise (tt, 27 C): gain 7.2e4 (97 dB) unloaded, 7.5e3 into 20 kohm (r_out 173 kohm,
* falling to 0.8 kohm above 120 Hz), GBW
* 8.6 MHz, phase margin 75 degrees into 10 pF, swing -1.53 V .. +1.61 V into 20 kohm (10 mV from linear), offset
* -4 uV, 237 uA, e_n 16 nV/rtHz white with a 1/f corner near 120 kHz (docs/opamp_cells.md).
.subckt gf180_miller inp inn out vdd vss
IBIAS vdd nb 10u
XMB nb nb vss vss nfet_03v3 w=5u l=2u
XM5 tail nb vss vss nfet_03v3 w=10u l=2u
XM1 d1 inn tail vss nfet_03v3 w=20u l=1u
XM2 d2 inp tail vss nfet_03v3 w=20u l=1u
XM3 d1 d1 vdd vdd pfet_03v3 w=10u l=1u
XM4 d2 d1 vdd vdd pfet_03v3 w=10u l=1u
XM6 out d2 vdd vdd pfet_03v3 w=100u l=1u m=2
XM7 out nb vss vss nfet_03v3 w=100u l=2u
RZ d2 cz 2k
CC cz out 3p
.ends gf180_miller
