/* Compiled as C (not C++) into test_capi: the ABI header must stand alone in plain C. */
#include "swiglu/swiglu_c.h"

int swiglu_capi_header_is_c(void) {
  swiglu_problem p = {0, 1, 1, 0, SWIGLU_DTYPE_BF16, SWIGLU_LAYOUT_LINEAR, 0, SWIGLU_MATH_EXACT};
  return swiglu_forward(&p, 0, 0, 0, 0, 0, 0) == SWIGLU_OK ? SWIGLU_C_ABI_VERSION : -1;
}
