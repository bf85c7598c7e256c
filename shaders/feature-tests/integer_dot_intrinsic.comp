#version 450
// Configure-time check: can this glslc emit OpSDot (SPV_KHR_integer_dot_product)
// through GL_EXT_spirv_intrinsics? Debian 12's glslc (glslang 11) lacks
// GL_EXT_integer_dot_product but has the intrinsics (shaders/common/intdot.glsl).
#extension GL_EXT_spirv_intrinsics : require
spirv_instruction(extensions = ["SPV_KHR_integer_dot_product"], capabilities = [6019, 6018], id = 4450)
int sdot_4x8(uint a, uint b, spirv_literal int fmt);
layout(local_size_x = 1) in;
layout(binding = 0) buffer B { uint v[]; };
void main() { v[2] = uint(sdot_4x8(v[0], v[1], 0)); }
