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
