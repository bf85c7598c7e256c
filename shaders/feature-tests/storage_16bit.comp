#version 450
// Configure-time check: does this glslc accept GL_EXT_shader_16bit_storage?
#extension GL_EXT_shader_16bit_storage : require
layout(local_size_x = 1) in;
void main() {}
