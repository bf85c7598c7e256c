// types.glsl: byte geometry of the quant blocks, mirroring loader/types.h
// (the C side asserts the same sizes and offsets in engine/vulkan/ops_matmul.c).
// Blocks are read from uint words by byte address (dequant.glsl), so no
// 8/16-bit storage feature is needed and odd block sizes (18, 34, 210) work.

// block_q4_0 { f16 d; u8 qs[16]; }                      18 bytes / 32 elements
#define Q4_0_BYTES 18u
#define Q4_0_QS    2u
// block_q8_0 { f16 d; i8 qs[32]; }                      34 bytes / 32 elements
#define Q8_0_BYTES 34u
#define Q8_0_QS    2u
// block_q4_1 { f16 d, m; u8 qs[16]; }                   20 bytes / 32 elements
#define Q4_1_BYTES 20u
#define Q4_1_M     2u
#define Q4_1_QS    4u
// block_q5_0 { f16 d; u8 qh[4]; u8 qs[16]; }            22 bytes / 32 elements
#define Q5_0_BYTES 22u
#define Q5_0_QH    2u
#define Q5_0_QS    6u
// block_q5_1 { f16 d, m; u8 qh[4]; u8 qs[16]; }         24 bytes / 32 elements
#define Q5_1_BYTES 24u
#define Q5_1_M     2u
#define Q5_1_QH    4u
#define Q5_1_QS    8u
// block_q2_K { u8 scales[16]; u8 qs[64]; f16 d, dmin; } 84 bytes / 256 elements
#define Q2_K_BYTES  84u
#define Q2_K_QS     16u
#define Q2_K_D      80u
#define Q2_K_DMIN   82u
// block_q3_K { u8 hmask[32]; u8 qs[64]; u8 scales[12]; f16 d; } 110 bytes / 256 elements
#define Q3_K_BYTES  110u
#define Q3_K_QS     32u
#define Q3_K_SCALES 96u
#define Q3_K_D      108u
// block_q5_K { f16 d, dmin; u8 scales[12]; u8 qh[32]; u8 qs[128]; } 176 bytes / 256 elements
#define Q5_K_BYTES  176u
#define Q5_K_DMIN   2u
#define Q5_K_SCALES 4u
#define Q5_K_QH     16u
#define Q5_K_QS     48u
// block_q4_K { f16 d, dmin; u8 scales[12]; u8 qs[128]; } 144 bytes / 256 elements
#define Q4_K_BYTES  144u
#define Q4_K_DMIN   2u
#define Q4_K_SCALES 4u
#define Q4_K_QS     16u
// block_q6_K { u8 ql[128]; u8 qh[64]; i8 scales[16]; f16 d; } 210 bytes / 256 elements
#define Q6_K_BYTES  210u
#define Q6_K_QH     128u
#define Q6_K_SCALES 192u
#define Q6_K_D      208u
