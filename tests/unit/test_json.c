/* Unit tests for json: structure, commas, escaping, numbers, pretty form. */
#include "testutil.h"

#include <math.h>
#include <string.h>

#include "sqlenvfs/json.h"

static char *
escaped(const char *s)
{
  GString *out = g_string_new(NULL);
  sqlenvfs_json_append_string(out, s);
  return g_string_free(out, FALSE);
}

START_TEST(test_compact_structure)
{
  g_autoptr(SqlenvfsJson) j = sqlenvfs_json_new(FALSE);
  g_autofree char *text = NULL;

  sqlenvfs_json_begin_object(j);
  sqlenvfs_json_member_string(j, "name", "app");
  sqlenvfs_json_member_int(j, "n", -3);
  sqlenvfs_json_member_uint(j, "big", G_MAXUINT64);
  sqlenvfs_json_member_bool(j, "ok", TRUE);
  sqlenvfs_json_member_null(j, "none");
  sqlenvfs_json_key(j, "list");
  sqlenvfs_json_begin_array(j);
  sqlenvfs_json_string(j, "a");
  sqlenvfs_json_int(j, 2);
  sqlenvfs_json_begin_object(j);
  sqlenvfs_json_end_object(j);
  sqlenvfs_json_begin_array(j);
  sqlenvfs_json_end_array(j);
  sqlenvfs_json_end_array(j);
  sqlenvfs_json_member_string(j, "s", NULL);
  sqlenvfs_json_end_object(j);
  text = sqlenvfs_json_finish(j);
  ck_assert_str_eq(text, "{\"name\":\"app\",\"n\":-3,\"big\":18446744073709551615,\"ok\":true,"
                         "\"none\":null,\"list\":[\"a\",2,{},[]],\"s\":null}\n");
}
END_TEST

START_TEST(test_pretty)
{
  g_autoptr(SqlenvfsJson) j = sqlenvfs_json_new(TRUE);
  g_autofree char *text = NULL;

  sqlenvfs_json_begin_object(j);
  sqlenvfs_json_member_int(j, "a", 1);
  sqlenvfs_json_key(j, "b");
  sqlenvfs_json_begin_array(j);
  sqlenvfs_json_bool(j, FALSE);
  sqlenvfs_json_end_array(j);
  sqlenvfs_json_key(j, "c");
  sqlenvfs_json_begin_object(j);
  sqlenvfs_json_end_object(j);
  sqlenvfs_json_end_object(j);
  text = sqlenvfs_json_finish(j);
  ck_assert_str_eq(text, "{\n  \"a\": 1,\n  \"b\": [\n    false\n  ],\n  \"c\": {}\n}\n");
}
END_TEST

START_TEST(test_top_level_values_and_reuse)
{
  g_autoptr(SqlenvfsJson) j = sqlenvfs_json_new(FALSE);
  g_autofree char *first = NULL, *second = NULL;

  sqlenvfs_json_string(j, "x");
  first = sqlenvfs_json_finish(j);
  ck_assert_str_eq(first, "\"x\"\n");
  sqlenvfs_json_begin_array(j);
  sqlenvfs_json_end_array(j);
  second = sqlenvfs_json_finish(j);
  ck_assert_str_eq(second, "[]\n");
}
END_TEST

START_TEST(test_escaping)
{
  g_autofree char *plain = escaped("a b");
  g_autofree char *quotes = escaped("say \"hi\" \\ there");
  g_autofree char *ctrl = escaped("l1\nl2\r\t\b\f\x01\x1f");
  g_autofree char *utf8 = escaped("caf\xc3\xa9 \xe2\x82\xac");
  g_autofree char *bad = escaped("a\xff" "b\xc3");
  g_autofree char *null = escaped(NULL);

  ck_assert_str_eq(plain, "\"a b\"");
  ck_assert_str_eq(quotes, "\"say \\\"hi\\\" \\\\ there\"");
  ck_assert_str_eq(ctrl, "\"l1\\nl2\\r\\t\\b\\f\\u0001\\u001f\"");
  ck_assert_str_eq(utf8, "\"caf\xc3\xa9 \xe2\x82\xac\"");
  ck_assert_str_eq(bad, "\"a\xef\xbf\xbd" "b\xef\xbf\xbd\"");
  ck_assert(g_utf8_validate(bad, -1, NULL));
  ck_assert_str_eq(null, "null");
}
END_TEST

START_TEST(test_keys_are_escaped)
{
  g_autoptr(SqlenvfsJson) j = sqlenvfs_json_new(FALSE);
  g_autofree char *text = NULL;
  sqlenvfs_json_begin_object(j);
  sqlenvfs_json_member_int(j, "we\"ird\n", 1);
  sqlenvfs_json_end_object(j);
  text = sqlenvfs_json_finish(j);
  ck_assert_str_eq(text, "{\"we\\\"ird\\n\":1}\n");
}
END_TEST

START_TEST(test_doubles)
{
  g_autoptr(SqlenvfsJson) j = sqlenvfs_json_new(FALSE);
  g_autofree char *text = NULL;
  sqlenvfs_json_begin_array(j);
  sqlenvfs_json_double(j, 0.1);
  sqlenvfs_json_double(j, 1.5);
  sqlenvfs_json_double(j, -2.0);
  sqlenvfs_json_double(j, 1e300);
  sqlenvfs_json_double(j, NAN);
  sqlenvfs_json_double(j, INFINITY);
  sqlenvfs_json_end_array(j);
  text = sqlenvfs_json_finish(j);
  ck_assert_str_eq(text, "[0.1,1.5,-2,1e+300,null,null]\n");
}
END_TEST

static Suite *
json_suite(void)
{
  Suite *s = suite_create("json");
  TCase *tc = tcase_create("json");
  tcase_add_test(tc, test_compact_structure);
  tcase_add_test(tc, test_pretty);
  tcase_add_test(tc, test_top_level_values_and_reuse);
  tcase_add_test(tc, test_escaping);
  tcase_add_test(tc, test_keys_are_escaped);
  tcase_add_test(tc, test_doubles);
  suite_add_tcase(s, tc);
  return s;
}

int
main(void)
{
  return testutil_run(json_suite());
}
