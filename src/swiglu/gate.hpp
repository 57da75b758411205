// Transitional: the old name of elementwise.hpp, still included by src/train and src/baselines.
#pragma once

#include "swiglu/elementwise.hpp"
