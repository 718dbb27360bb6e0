* sky130_ota5t: five-transistor OTA (one stage) in SkyWater sky130 (1.8 V core devices sky130_fd_pr__nfet_01v8 /
* pfet_01v8), pins inp inn out vdd vss, supplies +/-0.9 V around the SPU's ground.
*
* Design note. The simplest op-amp: an NMOS pair M1 (inp, diode side) / M2 (inn, output side) (W/L 40/1) with a PMOS mirror load M3/M4 (16/1) and an NMOS
* tail M5 (40/2) at 100 uA, mirrored from IBIAS 10 uA into the diode MB (an ideal current source: on a chip a
* bandgap or beta multiplier; W/L in um, the sky130 models set .option scale=1u). Its output is the high-impedance
* drain node (r_out = ro2 || ro4, about 100 kohm), so it suits capacitive loads: into an SPU's resistor array
* (10 kohm .. 100 kohm to virtual grounds) its gain drops to about gm1 (r_out || R_load), tens, and the integrators'
* finite-gain error grows accordingly (spu-sim characterise reports both the unloaded gain and r_out_ohm, which the
* macromodel combines the same way). Expected: GBW = gm1 / (2 pi C_load), one pole, quiescent current 10 + 100 uA.
* Measured by spu-sim characterise (tt, 27 C): gain 132 (42 dB) unloaded, 14 into 20 kohm (r_out 166 kohm), GBW
* 12.6 MHz into 10 pF, phase margin 88 degrees, swing -0.50 V .. +0.41 V into 20 kohm (10 mV from linear), offset
* -3.4 mV, 110 uA. Kept as the cheap reference against which the two-stage cells are judged.
.subckt sky130_ota5t inp inn out vdd vss
IBIAS vdd nb 10u
XMB nb nb vss vss sky130_fd_pr__nfet_01v8 w=4 l=2
XM5 tail nb vss vss sky130_fd_pr__nfet_01v8 w=40 l=2
XM1 d1 inp tail vss sky130_fd_pr__nfet_01v8 w=40 l=1
XM2 out inn tail vss sky130_fd_pr__nfet_01v8 w=40 l=1
XM3 d1 d1 vdd vdd sky130_fd_pr__pfet_01v8 w=16 l=1
XM4 out d1 vdd vdd sky130_fd_pr__pfet_01v8 w=16 l=1
.ends sky130_ota5t
