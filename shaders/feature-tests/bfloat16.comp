#version 450
// Configure-time check: does this glslc accept GL_EXT_bfloat16?
#extension GL_EXT_bfloat16 : require
layout(local_size_x = 1) in;
void main() {}
