/* Unit tests for pgtype: PostgreSQL text output -> SQLite values. */
#include "testutil.h"

#include <math.h>
#include <string.h>

#include "sqlenvfs/error.h"
#include "sqlenvfs/pgtype.h"

static SqlenvfsPgType
type_of(SqlenvfsPgKind kind, SqlenvfsPgKind elem, int precision)
{
  SqlenvfsPgType t = { .kind = kind, .elem = elem, .precision = precision };
  return t;
}

/* Convert and expect TEXT @want. */
static void
expect_text(SqlenvfsPgType t, const char *in, const char *want)
{
  SqlenvfsPgValue v;
  GError *error = NULL;
  sqlenvfs_pg_value_init(&v);
  ck_assert_msg(sqlenvfs_pg_value_convert(&t, in, strlen(in), &v, &error), "%s: %s", in,
                error ? error->message : "");
  ck_assert_int_eq(v.type, SQLENVFS_PG_VALUE_TEXT);
  ck_assert_msg(strcmp(v.buf->str, want) == 0, "%s: got '%s' want '%s'", in, v.buf->str, want);
  ck_assert_int_eq(strlen(v.buf->str), v.buf->len);
  sqlenvfs_pg_value_clear(&v);
}

static void
expect_invalid(SqlenvfsPgType t, const char *in)
{
  SqlenvfsPgValue v;
  GError *error = NULL;
  sqlenvfs_pg_value_init(&v);
  ck_assert_msg(!sqlenvfs_pg_value_convert(&t, in, strlen(in), &v, &error), "accepted '%s'", in);
  ck_assert(error != NULL);
  ck_assert_int_eq(error->code, SQLENVFS_ERROR_INVALID);
  g_error_free(error);
  sqlenvfs_pg_value_clear(&v);
}

START_TEST(test_kind_names)
{
  ck_assert_int_eq(sqlenvfs_pg_kind_from_name("int8"), SQLENVFS_PG_INT);
  ck_assert_int_eq(sqlenvfs_pg_kind_from_name("bool"), SQLENVFS_PG_BOOL);
  ck_assert_int_eq(sqlenvfs_pg_kind_from_name("timestamptz"), SQLENVFS_PG_TIMESTAMPTZ);
  ck_assert_int_eq(sqlenvfs_pg_kind_from_name("jsonb"), SQLENVFS_PG_JSON);
  ck_assert_int_eq(sqlenvfs_pg_kind_from_name("bpchar"), SQLENVFS_PG_TEXT);
  ck_assert_int_eq(sqlenvfs_pg_kind_from_name("point"), SQLENVFS_PG_UNSUPPORTED);
  ck_assert_int_eq(sqlenvfs_pg_kind_from_name("money"), SQLENVFS_PG_UNSUPPORTED);
  ck_assert_int_eq(sqlenvfs_pg_kind_from_name("_int4"), SQLENVFS_PG_UNSUPPORTED);
  ck_assert_int_eq(sqlenvfs_pg_time_precision(-1), 6);
  ck_assert_int_eq(sqlenvfs_pg_time_precision(0), 0);
  ck_assert_int_eq(sqlenvfs_pg_time_precision(3), 3);
}
END_TEST

START_TEST(test_decl)
{
  SqlenvfsPgType t = type_of(SQLENVFS_PG_NUMERIC, 0, 0);
  ck_assert_str_eq(sqlenvfs_pg_type_decl(&t), "TEXT");
  t.numeric_as_real = TRUE;
  ck_assert_str_eq(sqlenvfs_pg_type_decl(&t), "REAL");
  t = type_of(SQLENVFS_PG_BOOL, 0, 0);
  ck_assert_str_eq(sqlenvfs_pg_type_decl(&t), "INTEGER");
  t = type_of(SQLENVFS_PG_BYTEA, 0, 0);
  ck_assert_str_eq(sqlenvfs_pg_type_decl(&t), "BLOB");
  t = type_of(SQLENVFS_PG_ARRAY, SQLENVFS_PG_INT, 0);
  ck_assert_str_eq(sqlenvfs_pg_type_decl(&t), "TEXT");
  ck_assert(!sqlenvfs_pg_type_is_verbatim(&t));
  t = type_of(SQLENVFS_PG_TIMESTAMP, 0, 6);
  ck_assert(!sqlenvfs_pg_type_is_verbatim(&t));
  t = type_of(SQLENVFS_PG_JSON, 0, 0);
  ck_assert(sqlenvfs_pg_type_is_verbatim(&t));
  t = type_of(SQLENVFS_PG_NUMERIC, 0, 0);
  ck_assert(sqlenvfs_pg_type_is_verbatim(&t));
  t.numeric_as_real = TRUE;
  ck_assert(!sqlenvfs_pg_type_is_verbatim(&t));
}
END_TEST

START_TEST(test_integers_and_bool)
{
  SqlenvfsPgType ti = type_of(SQLENVFS_PG_INT, 0, 0), tb = type_of(SQLENVFS_PG_BOOL, 0, 0);
  SqlenvfsPgValue v;
  sqlenvfs_pg_value_init(&v);
  ck_assert(sqlenvfs_pg_value_convert(&ti, "-9223372036854775808", 20, &v, NULL));
  ck_assert_int_eq(v.type, SQLENVFS_PG_VALUE_INTEGER);
  ck_assert(v.i == G_MININT64);
  ck_assert(sqlenvfs_pg_value_convert(&ti, "42", 2, &v, NULL));
  ck_assert(v.i == 42);
  ck_assert(sqlenvfs_pg_value_convert(&tb, "t", 1, &v, NULL));
  ck_assert(v.type == SQLENVFS_PG_VALUE_INTEGER && v.i == 1);
  ck_assert(sqlenvfs_pg_value_convert(&tb, "f", 1, &v, NULL));
  ck_assert(v.type == SQLENVFS_PG_VALUE_INTEGER && v.i == 0);
  sqlenvfs_pg_value_clear(&v);
  expect_invalid(ti, "12x");
  expect_invalid(ti, "9223372036854775808");
  expect_invalid(ti, "");
  expect_invalid(tb, "true");
}
END_TEST

START_TEST(test_floats)
{
  SqlenvfsPgType tf = type_of(SQLENVFS_PG_FLOAT, 0, 0);
  SqlenvfsPgValue v;
  sqlenvfs_pg_value_init(&v);
  ck_assert(sqlenvfs_pg_value_convert(&tf, "0.1", 3, &v, NULL));
  ck_assert(v.type == SQLENVFS_PG_VALUE_REAL && v.r == 0.1 && !v.was_nan);
  ck_assert(sqlenvfs_pg_value_convert(&tf, "1e+308", 6, &v, NULL));
  ck_assert(v.r == 1e308);
  ck_assert(sqlenvfs_pg_value_convert(&tf, "-2.2250738585072014e-308", 24, &v, NULL));
  ck_assert(v.r == -2.2250738585072014e-308);
  ck_assert(sqlenvfs_pg_value_convert(&tf, "Infinity", 8, &v, NULL));
  ck_assert(v.type == SQLENVFS_PG_VALUE_REAL && isinf(v.r) && v.r > 0);
  ck_assert(sqlenvfs_pg_value_convert(&tf, "-Infinity", 9, &v, NULL));
  ck_assert(v.type == SQLENVFS_PG_VALUE_REAL && isinf(v.r) && v.r < 0);
  ck_assert(sqlenvfs_pg_value_convert(&tf, "NaN", 3, &v, NULL));
  ck_assert(v.type == SQLENVFS_PG_VALUE_NULL && v.was_nan);
  ck_assert(sqlenvfs_pg_value_convert(&tf, "-0", 2, &v, NULL));
  ck_assert(v.type == SQLENVFS_PG_VALUE_REAL && v.r == 0 && signbit(v.r) && !v.was_nan);
  sqlenvfs_pg_value_clear(&v);
  expect_invalid(tf, "inf");
  expect_invalid(tf, "nan");
  expect_invalid(tf, "1.5x");
  expect_invalid(tf, "0x10");
}
END_TEST

START_TEST(test_numeric)
{
  SqlenvfsPgType tn = type_of(SQLENVFS_PG_NUMERIC, 0, 0);
  SqlenvfsPgValue v;
  expect_text(tn, "12345678901234567890.000000000000000001", "12345678901234567890.000000000000000001");
  expect_text(tn, "1.50", "1.50");
  expect_text(tn, "NaN", "NaN");
  tn.numeric_as_real = TRUE;
  sqlenvfs_pg_value_init(&v);
  ck_assert(sqlenvfs_pg_value_convert(&tn, "1.50", 4, &v, NULL));
  ck_assert(v.type == SQLENVFS_PG_VALUE_REAL && v.r == 1.5);
  ck_assert(sqlenvfs_pg_value_convert(&tn, "NaN", 3, &v, NULL));
  ck_assert(v.type == SQLENVFS_PG_VALUE_NULL && v.was_nan);
  ck_assert(sqlenvfs_pg_value_convert(&tn, "-Infinity", 9, &v, NULL));
  ck_assert(v.type == SQLENVFS_PG_VALUE_REAL && isinf(v.r) && v.r < 0);
  sqlenvfs_pg_value_clear(&v);
  /* Finite, but beyond a double: an error, not Infinity. */
  {
    g_autofree char *huge = g_strdup_printf("1%0400d", 0);
    g_autofree char *nhuge = g_strdup_printf("-%s.5", huge);
    expect_invalid(tn, huge);
    expect_invalid(tn, nhuge);
  }
  /* Not zero, but below the smallest double: an error, not 0 (numeric's
   * text has no exponent); zero itself and a subnormal convert. */
  {
    g_autofree char *tiny = g_strdup_printf("0.%0399d1", 0);
    g_autofree char *ntiny = g_strdup_printf("-%s", tiny);
    g_autofree char *sub = g_strdup_printf("0.%0322d5", 0);
    expect_invalid(tn, tiny);
    expect_invalid(tn, ntiny);
    sqlenvfs_pg_value_init(&v);
    ck_assert(sqlenvfs_pg_value_convert(&tn, "0.000", 5, &v, NULL));
    ck_assert(v.type == SQLENVFS_PG_VALUE_REAL && v.r == 0);
    ck_assert(sqlenvfs_pg_value_convert(&tn, sub, strlen(sub), &v, NULL));
    ck_assert(v.type == SQLENVFS_PG_VALUE_REAL && v.r > 0 && v.r < 1e-322);
    sqlenvfs_pg_value_clear(&v);
  }
}
END_TEST

START_TEST(test_bytea)
{
  SqlenvfsPgType t = type_of(SQLENVFS_PG_BYTEA, 0, 0);
  SqlenvfsPgValue v;
  sqlenvfs_pg_value_init(&v);
  ck_assert(sqlenvfs_pg_value_convert(&t, "\\x00ff7F", 8, &v, NULL));
  ck_assert_int_eq(v.type, SQLENVFS_PG_VALUE_BLOB);
  ck_assert_int_eq(v.buf->len, 3);
  ck_assert(memcmp(v.buf->str, "\x00\xff\x7f", 3) == 0);
  ck_assert(sqlenvfs_pg_value_convert(&t, "\\x", 2, &v, NULL));
  ck_assert_int_eq(v.buf->len, 0);
  sqlenvfs_pg_value_clear(&v);
  expect_invalid(t, "\\x0");
  expect_invalid(t, "\\xzz");
  expect_invalid(t, "\\000"); /* escape format: the session must use hex */
}
END_TEST

START_TEST(test_times)
{
  SqlenvfsPgType tz6 = type_of(SQLENVFS_PG_TIMESTAMPTZ, 0, 6);
  SqlenvfsPgType tz0 = type_of(SQLENVFS_PG_TIMESTAMPTZ, 0, 0);
  SqlenvfsPgType ts3 = type_of(SQLENVFS_PG_TIMESTAMP, 0, 3);
  SqlenvfsPgType d = type_of(SQLENVFS_PG_DATE, 0, 0);
  SqlenvfsPgType tm = type_of(SQLENVFS_PG_TIME, 0, 6);
  SqlenvfsPgType ttz = type_of(SQLENVFS_PG_TIMETZ, 0, 2);

  expect_text(tz6, "2024-02-29 23:59:59.5+00", "2024-02-29T23:59:59.500000Z");
  expect_text(tz6, "2024-02-29 23:59:59+00", "2024-02-29T23:59:59.000000Z");
  expect_text(tz0, "1999-01-08 04:05:06+00", "1999-01-08T04:05:06Z");
  expect_text(tz6, "0001-01-01 00:00:00+00 BC", "0000-01-01T00:00:00.000000Z");
  expect_text(tz6, "0044-03-15 12:00:00.000001+00 BC", "-0043-03-15T12:00:00.000001Z");
  expect_text(tz6, "infinity", "infinity");
  expect_text(tz6, "-infinity", "-infinity");
  expect_text(ts3, "294276-12-31 23:59:59.12", "294276-12-31T23:59:59.120");
  expect_text(ts3, "2000-01-01 00:00:00", "2000-01-01T00:00:00.000");
  expect_text(d, "2024-01-31", "2024-01-31");
  expect_text(d, "4713-11-24 BC", "-4712-11-24");
  expect_text(d, "-infinity", "-infinity");
  expect_text(tm, "24:00:00", "24:00:00.000000");
  expect_text(tm, "04:05:06.789", "04:05:06.789000");
  expect_text(ttz, "04:05:06.7+05:30", "04:05:06.70+05:30");
  expect_text(ttz, "04:05:06-08", "04:05:06.00-08:00");
  expect_text(ttz, "04:05:06+01:02:03", "04:05:06.00+01:02:03");

  expect_invalid(tz6, "2024-02-29 23:59:59+01"); /* TimeZone was not UTC */
  expect_invalid(tz6, "2024-02-29T23:59:59+00");
  expect_invalid(tz6, "Thu Feb 29 23:59:59 2024 UTC"); /* DateStyle Postgres */
  expect_invalid(ts3, "02/29/2024 23:59:59");
  expect_invalid(d, "29.02.2024");
  expect_invalid(tm, "4:05:06");
  expect_invalid(ttz, "04:05:06");
}
END_TEST

START_TEST(test_passthrough)
{
  expect_text(type_of(SQLENVFS_PG_TEXT, 0, 0), "h\xc3\xa9llo \"w\" \\ \n", "h\xc3\xa9llo \"w\" \\ \n");
  expect_text(type_of(SQLENVFS_PG_INTERVAL, 0, 0), "P1Y2M3DT4H5M6.5S", "P1Y2M3DT4H5M6.5S");
  expect_text(type_of(SQLENVFS_PG_JSON, 0, 0), "{\"a\": [1, 2]}", "{\"a\": [1, 2]}");
}
END_TEST

START_TEST(test_arrays)
{
  SqlenvfsPgType ai = type_of(SQLENVFS_PG_ARRAY, SQLENVFS_PG_INT, 0);
  SqlenvfsPgType at = type_of(SQLENVFS_PG_ARRAY, SQLENVFS_PG_TEXT, 0);
  SqlenvfsPgType af = type_of(SQLENVFS_PG_ARRAY, SQLENVFS_PG_FLOAT, 0);
  SqlenvfsPgType an = type_of(SQLENVFS_PG_ARRAY, SQLENVFS_PG_NUMERIC, 0);
  SqlenvfsPgType ab = type_of(SQLENVFS_PG_ARRAY, SQLENVFS_PG_BOOL, 0);
  SqlenvfsPgType aj = type_of(SQLENVFS_PG_ARRAY, SQLENVFS_PG_JSON, 0);
  SqlenvfsPgType ay = type_of(SQLENVFS_PG_ARRAY, SQLENVFS_PG_BYTEA, 0);
  SqlenvfsPgType ats = type_of(SQLENVFS_PG_ARRAY, SQLENVFS_PG_TIMESTAMPTZ, 0);

  expect_text(ai, "{}", "[]");
  expect_text(ai, "{1,-2,NULL}", "[1,-2,null]");
  expect_text(ai, "{{1,2},{3,4}}", "[[1,2],[3,4]]");
  expect_text(ai, "[0:1]={7,8}", "[7,8]");
  expect_text(ai, "[1:1][2:3]={{7,8}}", "[[7,8]]");
  expect_text(at, "{a,\"b c\",\"NULL\",NULL,\"q\\\"x\\\\y\",\"{}\",\"\"}",
              "[\"a\",\"b c\",\"NULL\",null,\"q\\\"x\\\\y\",\"{}\",\"\"]");
  expect_text(at, "{\"line\nbreak\tand \x01\"}", "[\"line\\nbreak\\tand \\u0001\"]");
  expect_text(at, "{\xc3\xa9t\xc3\xa9}", "[\"\xc3\xa9t\xc3\xa9\"]");
  expect_text(af, "{0.1,NaN,Infinity,-Infinity,1e+100}", "[0.1,\"NaN\",\"Infinity\",\"-Infinity\",1e+100]");
  expect_text(an, "{1.50,NaN}", "[1.50,\"NaN\"]");
  {
    /* A finite numeric beyond a double's range stays a JSON number. */
    g_autofree char *huge = g_strdup_printf("1%0400d", 0);
    g_autofree char *in = g_strdup_printf("{%s,-%s,Infinity}", huge, huge);
    g_autofree char *want = g_strdup_printf("[%s,-%s,\"Infinity\"]", huge, huge);
    expect_text(an, in, want);
  }
  expect_text(ab, "{t,f,NULL}", "[true,false,null]");
  expect_text(aj, "{\"{\\\"a\\\": 1}\",\"[1, 2]\",NULL}", "[{\"a\": 1},[1, 2],null]");
  expect_text(ay, "{\"\\\\x00ff\"}", "[\"\\\\x00ff\"]");
  expect_text(ats, "{\"2024-01-01 00:00:00+00\",NULL}", "[\"2024-01-01T00:00:00Z\",null]");

  expect_invalid(ai, "{1,2");
  expect_invalid(ai, "{1,x}");
  expect_invalid(ai, "1,2");
  expect_invalid(ai, "{1,2}junk");
  expect_invalid(at, "{\"unterminated}");
  expect_invalid(ats, "{\"2024-01-01 00:00:00+02\"}");
}
END_TEST

static Suite *
pgtype_suite(void)
{
  Suite *s = suite_create("pgtype");
  TCase *tc = tcase_create("core");
  tcase_add_test(tc, test_kind_names);
  tcase_add_test(tc, test_decl);
  tcase_add_test(tc, test_integers_and_bool);
  tcase_add_test(tc, test_floats);
  tcase_add_test(tc, test_numeric);
  tcase_add_test(tc, test_bytea);
  tcase_add_test(tc, test_times);
  tcase_add_test(tc, test_passthrough);
  tcase_add_test(tc, test_arrays);
  suite_add_tcase(s, tc);
  return s;
}

int
main(void)
{
  return testutil_run(pgtype_suite());
}
