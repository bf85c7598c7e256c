#version 450
// get_rows.comp: GET_ROWS (embedding lookup) from a table of any weight
// type, dequantized by dequant.glsl. One workgroup per id; rows outside
// this dispatch's table window [row0, row1) are left to another dispatch.
// An id outside the whole table never indexes memory: the first window's
// dispatch writes a row of zeros and reports it in the status words
// (engine/vulkan/vk_internal.h, VK_STATUS_*), which fail the pass.
#extension GL_GOOGLE_include_directive : require
#define PUSH_GET_ROWS
#include "push.glsl"

layout(constant_id = 0) const uint WG = 64;
layout(local_size_x_id = 0) in;

layout(binding = 0) readonly buffer T { uint wdata[]; };
layout(binding = 1) readonly buffer I { int ids[]; };
layout(binding = 2) writeonly buffer D { float d[]; };
layout(binding = 3) coherent buffer S { uint status[]; }; // flag, id, index, n_rows, tag
#include "dequant.glsl"

void main()
{
    uint r = group_id();
    if (r >= p.n_ids) return;
    int id = ids[p.ids_offs + r];
    uint o = p.d.offs + r * p.d.nb1;
    if (id < 0 || uint(id) >= p.n_rows) {
        if (p.row0 != 0u) return;
        for (uint e = gl_LocalInvocationID.x; e < p.ne0; e += WG) d[o + e] = 0.0;
        if (gl_LocalInvocationID.x == 0u && atomicCompSwap(status[0], 0u, 1u) == 0u) {
            status[1] = uint(id);
            status[2] = r;
            status[3] = p.n_rows;
            status[4] = p.tag;
        }
        return;
    }
    if (uint(id) < p.row0 || uint(id) >= p.row1) return;
    uint trow = p.t_boffs + (uint(id) - p.row0) * p.t_nb1;
    for (uint g = gl_LocalInvocationID.x; g < p.ne0 / 4u; g += WG) {
        vec4 v = dq4(trow, 4u * g);
        d[o + 4u * g] = v.x;
        d[o + 4u * g + 1u] = v.y;
        d[o + 4u * g + 2u] = v.z;
        d[o + 4u * g + 3u] = v.w;
    }
#ifdef A_PLAIN
    for (uint e = (p.ne0 / 4u) * 4u + gl_LocalInvocationID.x; e < p.ne0; e += WG) d[o + e] = dq1(trow, e);
#endif
}
