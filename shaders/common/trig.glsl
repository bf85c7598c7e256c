// trig.glsl: sin and cos to float accuracy for any argument a kernel meets.
// The drivers' sin and cos need only be 2^-11 absolute inside [-pi, pi]
// (Vulkan's precision table) and reduce larger arguments in float: on an
// H200, RoPE at position 4096 came out 1.3e-4 off where the CPU's double
// sin/cos is exact, and the error grows with the position.
//
// Reduction by pi/2 (Cody-Waite): pi/2 is cut into parts of at most 6
// significant bits, so k * part is exact for quotients k below 2^18 and
// each subtraction is exact as well; no fma is needed (Vulkan does not
// promise a fused one; lavapipe's was not, here). Worst error measured on the
// host with the same float steps, fused or not: 1.1e-7 absolute for
// |x| <= 5e5, RoPE's positions up to ~300k. Then minimax polynomials on
// [-pi/4, pi/4] (Cephes sinf and cosf, about 1 ulp) and the quadrant's
// signs.

const float TRIG_2_OVER_PI = 0.636619746685028076171875;
const float TRIG_PIO2_1 = 1.5625;                   // 0x1.9p0
const float TRIG_PIO2_2 = 0.00830078125;            // 0x1.1p-7
const float TRIG_PIO2_3 = -4.410743713378906e-06;   // -0x1.28p-18
const float TRIG_PIO2_4 = -4.377216100692749e-08;   // -0x1.78p-25
const float TRIG_PIO2_5 = 6.07710062827671e-11;     // the rest, rounded

void sincos_accurate(float x, out float s, out float c)
{
    float k = round(x * TRIG_2_OVER_PI);
    float r = x - k * TRIG_PIO2_1;
    r -= k * TRIG_PIO2_2;
    r -= k * TRIG_PIO2_3;
    r -= k * TRIG_PIO2_4;
    r -= k * TRIG_PIO2_5;
    float r2 = r * r;
    float sr = r + r * r2 * (-1.6666654611e-1 + r2 * (8.3321608736e-3 + r2 * -1.9515295891e-4));
    float cr = 1.0 - 0.5 * r2 + r2 * r2 * (4.166664568298827e-2 + r2 * (-1.388731625493765e-3 + r2 * 2.443315711809948e-5));
    int q = int(k) & 3; // k mod 4, negative k included (two's complement)
    s = q == 0 ? sr : q == 1 ? cr : q == 2 ? -sr : -cr;
    c = q == 0 ? cr : q == 1 ? -sr : q == 2 ? -cr : sr;
}
