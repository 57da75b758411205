// Inline integer lists and word lists (cli_values.hpp).
#include "bench/cli_values.hpp"

#include <gtest/gtest.h>

#include <stdexcept>
#include <string>

namespace swiglu::bench {
namespace {

using V = std::vector<int64_t>;

// The message of the std::invalid_argument that parse_int_list throws, or "" if none.
std::string int_error(const std::string& text, int64_t min_value = 0,
                      int64_t max_value = INT64_MAX) {
  try {
    parse_int_list(text, min_value, max_value);
  } catch (const std::invalid_argument& e) {
    return e.what();
  }
  return "";
}

TEST(ParseIntList, SingleValues) {
  EXPECT_EQ(parse_int_list("784"), V({784}));
  EXPECT_EQ(parse_int_list("1,8,64"), V({1, 8, 64}));
  EXPECT_EQ(parse_int_list(" 1 , 2,3 "), V({1, 2, 3}));
  EXPECT_EQ(parse_int_list("0"), V({0}));
  EXPECT_EQ(parse_int_list("9223372036854775807"), V({INT64_MAX}));
}

TEST(ParseIntList, LinearRange) {
  EXPECT_EQ(parse_int_list("64:512:64"), V({64, 128, 192, 256, 320, 384, 448, 512}));
  EXPECT_EQ(parse_int_list("1:10:4"), V({1, 5, 9}));  // b not reached: stops below it
  EXPECT_EQ(parse_int_list("5:5:3"), V({5}));
  EXPECT_EQ(parse_int_list("0:2:1"), V({0, 1, 2}));
}

TEST(ParseIntList, Pow2Range) {
  EXPECT_EQ(parse_int_list("pow2:1:16"), V({1, 2, 4, 8, 16}));
  EXPECT_EQ(parse_int_list("pow2:3:100"), V({4, 8, 16, 32, 64}));
  EXPECT_EQ(parse_int_list("pow2:0:2"), V({1, 2}));
  EXPECT_EQ(parse_int_list("pow2:64:64"), V({64}));
  EXPECT_EQ(parse_int_list("pow2:4611686018427387904:9223372036854775807"),
            V({int64_t{1} << 62}));
}

TEST(ParseIntList, RangesNearInt64MaxDoNotOverflow) {
  EXPECT_EQ(parse_int_list("9223372036854775806:9223372036854775807:5"),
            V({INT64_MAX - 1}));
  EXPECT_EQ(parse_int_list("9223372036854775800:9223372036854775807:7"),
            V({INT64_MAX - 7, INT64_MAX}));
}

TEST(ParseIntList, MixedItemsKeepOrderAndDropDuplicates) {
  EXPECT_EQ(parse_int_list("1,pow2:1:8,6:10:2,4,777"), V({1, 2, 4, 8, 6, 10, 777}));
  EXPECT_EQ(parse_int_list("3,1,3,2,1"), V({3, 1, 2}));
}

TEST(ParseIntList, MinValue) {
  EXPECT_EQ(parse_int_list("1,2", 1), V({1, 2}));
  const std::string msg = int_error("1,0", 1);
  EXPECT_NE(msg.find("'0'"), std::string::npos) << msg;
  EXPECT_NE(msg.find("below the minimum 1"), std::string::npos) << msg;
  EXPECT_NE(int_error("0:4:2", 1), "");
}

TEST(ParseIntList, ErrorsQuoteTheItemAndTheForms) {
  const std::string msg = int_error("1,12x,3");
  EXPECT_NE(msg.find("'12x'"), std::string::npos) << msg;
  EXPECT_NE(msg.find("a:b:step"), std::string::npos) << msg;
  EXPECT_NE(msg.find("pow2:a:b"), std::string::npos) << msg;
}

TEST(ParseIntList, RejectsBadInput) {
  for (const char* bad : {"", " ", ",", "1,", ",1", "1,,2", "12x", "x", "-1", "1,-2", "+3", "1.5",
                          "1e3", "0x10", "1 2", "1:2", "1:2:3:4", "4:1:1", "1:4:0", "1:4:-1",
                          "1::2", "pow2:8:4", "pow2:5:7", "pow2:1", "pow2:-1:4", "pow3:1:4",
                          "9223372036854775808", "99999999999999999999", "pow2:1:x"}) {
    EXPECT_NE(int_error(bad), "") << "accepted \"" << bad << "\"";
  }
}

TEST(ParseIntList, SpecificMessages) {
  EXPECT_NE(int_error("-4").find("negative"), std::string::npos);
  EXPECT_NE(int_error("1:8:0").find("step must be > 0"), std::string::npos);
  EXPECT_NE(int_error("8:1:1").find("greater than its end"), std::string::npos);
  EXPECT_NE(int_error("9223372036854775808").find("does not fit"), std::string::npos);
  EXPECT_NE(int_error("1,,2").find("empty item"), std::string::npos);
  EXPECT_NE(int_error("pow2:5:7").find("no power of two"), std::string::npos);
}

TEST(ParseIntList, RejectsHugeExpansions) {
  const std::string msg = int_error("1:1000000000000:1");
  EXPECT_NE(msg.find("more than"), std::string::npos) << msg;
}

TEST(ParseIntList, CountsARangeBeforeExpandingIt) {
  const std::string msg = int_error("0:9223372036854775807:1");
  EXPECT_NE(msg.find("the range has 9223372036854775808 values, more than the limit of 1000000"),
            std::string::npos)
      << msg;
  EXPECT_EQ(parse_int_list("1:1000000:1").size(), kMaxListValues);
}

TEST(ParseIntList, MaxValue) {
  EXPECT_EQ(parse_int_list("1,2147483647", 1, 2147483647), V({1, 2147483647}));
  const std::string msg = int_error("8,2147483648", 1, 2147483647);
  EXPECT_NE(msg.find("'2147483648'"), std::string::npos) << msg;
  EXPECT_NE(msg.find("2147483648 is above the maximum 2147483647"), std::string::npos) << msg;
  EXPECT_NE(int_error("9223372036854775807", 0, 2147483647), "");
  EXPECT_NE(int_error("2147483640:2147483650:5", 0, 2147483647), "");
  EXPECT_NE(int_error("pow2:1:4294967296", 0, 2147483647), "");
}

TEST(SplitWords, Splits) {
  using W = std::vector<std::string>;
  EXPECT_EQ(split_words("bf16"), W({"bf16"}));
  EXPECT_EQ(split_words("bf16,fp16"), W({"bf16", "fp16"}));
  EXPECT_EQ(split_words(" bf16 , fp32 ,bf16"), W({"bf16", "fp32"}));
}

TEST(SplitWords, RejectsEmptyItems) {
  EXPECT_THROW(split_words(""), std::invalid_argument);
  EXPECT_THROW(split_words("bf16,"), std::invalid_argument);
  EXPECT_THROW(split_words("bf16,,fp16"), std::invalid_argument);
  EXPECT_THROW(split_words(" , "), std::invalid_argument);
}

TEST(SplitWords, DistinctWordsRefuseRepeats) {
  using W = std::vector<std::string>;
  EXPECT_EQ(split_distinct_words("fused, cublas2"), W({"fused", "cublas2"}));
  try {
    split_distinct_words("fused,cublas2, fused");
    FAIL() << "no exception";
  } catch (const std::invalid_argument& e) {
    EXPECT_EQ(std::string(e.what()), "'fused' is listed twice in \"fused,cublas2, fused\"");
  }
  EXPECT_THROW(split_distinct_words("fused,"), std::invalid_argument);
}

}  // namespace
}  // namespace swiglu::bench
