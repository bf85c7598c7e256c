#version 450
// Configure-time check: does this glslc accept GL_EXT_integer_dot_product?
#extension GL_EXT_integer_dot_product : require
layout(local_size_x = 1) in;
void main() {}
