#version 450
// Configure-time check: does this glslc accept GL_EXT_shader_explicit_arithmetic_types_int8?
#extension GL_EXT_shader_explicit_arithmetic_types_int8 : require
layout(local_size_x = 1) in;
void main() {}
