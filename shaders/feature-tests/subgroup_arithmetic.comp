#version 450
// Configure-time check: does this glslc accept GL_KHR_shader_subgroup_arithmetic?
#extension GL_KHR_shader_subgroup_arithmetic : require
layout(local_size_x = 1) in;
void main() {}
