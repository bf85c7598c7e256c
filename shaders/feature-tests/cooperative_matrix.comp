#version 450
// Configure-time check: does this glslc accept GL_KHR_cooperative_matrix?
#extension GL_KHR_cooperative_matrix : require
layout(local_size_x = 1) in;
void main() {}
