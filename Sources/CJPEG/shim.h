/* jpeglib.h needs FILE and size_t from stdio.h before it. */
#include <stdio.h>
#include <jpeglib.h>
