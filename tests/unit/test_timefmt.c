/* Unit tests for timefmt: every accepted form, and rejected ones. */
#include "testutil.h"

#include "sqlenvfs/error.h"
#include "sqlenvfs/timefmt.h"

#include <time.h>

/* 2026-11-28T16:14:00Z */
#define T0 (G_GINT64_CONSTANT(1795882440) * G_USEC_PER_SEC)

static const struct {
  const char *text;
  gint64 us;
} accepted[] = {
  { "20261128T161400Z", T0 },
  { "20261128T161400.250Z", T0 + 250000 },
  { "20261128T161400.000001Z", T0 + 1 },
  { "2026-11-28T16:14:00Z", T0 },
  { "2026-11-28T16:14:00.25+01:00", T0 - G_GINT64_CONSTANT(3600) * G_USEC_PER_SEC + 250000 },
  { "2026-11-28T16:14:00-05:30", T0 + G_GINT64_CONSTANT(5 * 3600 + 1800) * G_USEC_PER_SEC },
  { "@1795882440", T0 },
  { "@1795882440.25", T0 + 250000 },
  { "@0", 0 },
  /* Up to nine fraction digits (date +%N); beyond microseconds ignored. */
  { "20261128T161400.123456789Z", T0 + 123456 },
  { "2026-11-28T16:14:00.1234567Z", T0 + 123456 },
  { "2026-11-28T16:14:00.999999999+01:00",
    T0 - G_GINT64_CONSTANT(3600) * G_USEC_PER_SEC + 999999 },
  { "@1795882440.000000001", T0 },
  /* As list prints a time (always with an offset). */
  { "2026-11-28 16:14:00 +00:00", T0 },
  { "2026-11-28 17:14:00.5 +01:00", T0 + 500000 },
  /* An offset with seconds, as list prints one that has them. */
  { "2026-11-28 21:44:30 +05:30:30", T0 },
  { "2026-11-28T16:14:00-00:00:01", T0 + G_USEC_PER_SEC },
  /* The ends of the range: a date before 1970 whose offset brings it in,
   * and the last second, as seconds since the epoch. */
  { "1969-12-31T23:30:00-01:00", G_GINT64_CONSTANT(1800) * G_USEC_PER_SEC },
  { "@253402300799", G_GINT64_CONSTANT(253402300799) * G_USEC_PER_SEC },
};

static const char *const rejected[] = {
  "", "now", "yesterday", "2026-11-28", "2026-11-28 16:14:00Z", "2026-11-28T16:14:00",
  "20261128T161400", "20261128T1614Z", "2026-13-28T16:14:00Z", "2026-02-30T16:14:00Z",
  "2026-11-28T24:00:00Z", "2026-11-28T16:60:00Z", "2026-11-28T16:14:60Z",
  "2026-11-28T16:14:00.Z", "2026-11-28T16:14:00.1234567890Z", "@1.1234567890", "2026-11-28T16:14:00+0100",
  "2026-11-28T16:14:00+25:00", "1970-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00", "@", "@-5", "@1.", "@12a", "@1795882440Z",
  "20261128T161400Zjunk", "LATEST", "latest ", "EARLIEST", "earliest ", "1969-12-31T23:59:59Z",
  "2026-11-28t16:14:00z", "2026-11-28 16:14:00", "2026-11-28 16:14:00 Z",
  "2026-11-28 16:14:00+00:00", "2026-11-28T16:14:00 +00:00", "2026-11-28  16:14:00 +00:00",
  "2026-11-28 16:14:00 +01:00:60", "2026-11-28 16:14:00 +01:00:", "@253402300800",
  "@2534023007990", "19691231T233000Z",
};

START_TEST(test_accepted)
{
  SqlenvfsTime t = { 0 };
  GError *error = NULL;
  gboolean ok = sqlenvfs_time_parse(accepted[_i].text, &t, &error);
  ck_assert_no_error(error);
  ck_assert(ok);
  ck_assert(!t.is_latest);
  ck_assert_msg(t.us == accepted[_i].us, "%s: got %" G_GINT64_FORMAT " want %" G_GINT64_FORMAT,
                accepted[_i].text, t.us, accepted[_i].us);
}
END_TEST

START_TEST(test_rejected)
{
  SqlenvfsTime t = { .is_latest = FALSE, .us = 42 };
  GError *error = NULL;
  ck_assert_msg(!sqlenvfs_time_parse(rejected[_i], &t, &error), "accepted '%s'", rejected[_i]);
  ck_assert(error != NULL);
  ck_assert_int_eq(error->code, SQLENVFS_ERROR_INVALID);
  /* The message names the text and the accepted forms, or, for a time
   * that lacks only its zone, the same time in UTC, or the field out of
   * range of a time of the right shape. */
  ck_assert(strstr(error->message, rejected[_i]) != NULL);
  ck_assert_msg(strstr(error->message, "@1795882440.25") != NULL ||
                strstr(error->message, "has no time zone (for UTC: '") != NULL ||
                strstr(error->message, " is out of range (") != NULL, "%s",
                error->message);
  ck_assert_int_eq(t.us, 42);
  g_error_free(error);
}
END_TEST

START_TEST(test_no_zone)
{
  static const char *const cases[][2] = {
    { "2026-11-28T16:14:00", "'2026-11-28T16:14:00Z'" },
    { "20261128T161400.5", "'20261128T161400.5Z'" },
    { "2026-11-28 16:14:00", "'2026-11-28 16:14:00 +00:00'" },
  };
  for (gsize i = 0; i < G_N_ELEMENTS(cases); i++) {
    SqlenvfsTime t = { 0 };
    GError *error = NULL;
    ck_assert(!sqlenvfs_time_parse(cases[i][0], &t, &error));
    ck_assert_msg(strstr(error->message, "has no time zone") != NULL &&
                  strstr(error->message, cases[i][1]) != NULL, "%s", error->message);
    g_error_free(error);
  }
}
END_TEST

START_TEST(test_field_out_of_range)
{
  /* A time of the right shape names its field out of range and its value. */
  static const char *const cases[][2] = {
    { "2016-12-31T23:59:60Z", "': second 60 is out of range (00 to 59; a leap second is not "
                              "accepted: give 23:59:59.999999 for it)" },
    { "2026-02-30T00:00:00Z", "': day 30 is out of range (01 to 28 in February 2026)" },
    { "2028-02-30T00:00:00Z", "': day 30 is out of range (01 to 29 in February 2028)" },
    { "2026-11-00T00:00:00Z", "': day 00 is out of range (01 to 30 in November 2026)" },
    { "2026-12-08T24:00:00Z", "': hour 24 is out of range (00 to 23; midnight is 00:00:00" },
    { "2026-12-08T10:60:00Z", "': minute 60 is out of range (00 to 59)" },
    { "2026-13-01T00:00:00Z", "': month 13 is out of range (01 to 12)" },
    { "20261301T000000Z", "': month 13 is out of range (01 to 12)" },
    { "2026-12-08 24:00:00 +01:00", "': hour 24 is out of range" },
    { "2026-02-30T00:00:00", "': day 30 is out of range" },
    { "2026-11-28T16:14:00+25:00", "': offset +25:00 is out of range (hours 00 to 23" },
  };
  for (gsize i = 0; i < G_N_ELEMENTS(cases); i++) {
    SqlenvfsTime t = { 0 };
    GError *error = NULL;
    ck_assert(!sqlenvfs_time_parse(cases[i][0], &t, &error));
    ck_assert_int_eq(error->code, SQLENVFS_ERROR_INVALID);
    ck_assert_msg(g_str_has_prefix(error->message, "not a time: '") &&
                  strstr(error->message, cases[i][0]) != NULL &&
                  strstr(error->message, cases[i][1]) != NULL, "%s", error->message);
    g_error_free(error);
  }
}
END_TEST

START_TEST(test_latest)
{
  SqlenvfsTime t = { 0 };
  ck_assert(sqlenvfs_time_parse("latest", &t, NULL));
  ck_assert(t.is_latest);
  ck_assert(!t.is_earliest);
  ck_assert(sqlenvfs_time_parse("earliest", &t, NULL));
  ck_assert(t.is_earliest);
  ck_assert(!t.is_latest);
  ck_assert(sqlenvfs_time_parse("2026-11-28T16:14:00Z", &t, NULL));
  ck_assert(!t.is_earliest && !t.is_latest);
}
END_TEST

START_TEST(test_format_roundtrip)
{
  gint64 samples[] = { T0, T0 + 250000, T0 + 1, T0 + 999999, 0 };
  for (gsize i = 0; i < G_N_ELEMENTS(samples); i++) {
    g_autofree char *iso = sqlenvfs_time_format_iso(samples[i]);
    SqlenvfsTime t = { 0 };
    ck_assert_msg(sqlenvfs_time_parse(iso, &t, NULL), "cannot parse %s", iso);
    ck_assert_int_eq(t.us, samples[i]);
  }
  {
    g_autofree char *name = sqlenvfs_time_format_name(T0 + 250000, FALSE);
    g_autofree char *name_ms = sqlenvfs_time_format_name(T0 + 250000, TRUE);
    g_autofree char *iso = sqlenvfs_time_format_iso(T0 + 250000);
    gint64 us = 0;
    ck_assert_str_eq(name, "20261128T161400Z");
    ck_assert_str_eq(name_ms, "20261128T161400.250Z");
    ck_assert_str_eq(iso, "2026-11-28T16:14:00.25Z");
    ck_assert(sqlenvfs_time_parse_name(name_ms, &us));
    ck_assert_int_eq(us, T0 + 250000);
    ck_assert(!sqlenvfs_time_parse_name("snapshot_20261128", &us));
  }
}
END_TEST

/* A local time in a zone whose offset has seconds reads back as the same
 * instant (it was printed to the minute, 30 s off). */
START_TEST(test_format_local_offset_seconds)
{
  const char *zones[] = { "XYZ-5:30:30", "UTC0", "ABC+3:00:15" };
  g_autofree char *saved = g_strdup(g_getenv("TZ"));
  for (gsize i = 0; i < G_N_ELEMENTS(zones); i++) {
    g_autofree char *text = NULL;
    SqlenvfsTime t = { 0 };
    g_setenv("TZ", zones[i], TRUE);
    tzset();
    text = sqlenvfs_time_format_local(T0);
    ck_assert_msg(sqlenvfs_time_parse(text, &t, NULL), "%s: cannot parse %s", zones[i], text);
    ck_assert_msg(t.us == T0, "%s: %s reads as %" G_GINT64_FORMAT, zones[i], text, t.us);
  }
  if (saved)
    g_setenv("TZ", saved, TRUE);
  else
    g_unsetenv("TZ");
  tzset();
}
END_TEST

/* Times read from damaged data can be anything; formatting them says so. */
START_TEST(test_format_out_of_range)
{
  const gint64 bad[] = { -1, G_MININT64, G_MAXINT64, SQLENVFS_TIME_MAX_US + 1 };
  for (gsize i = 0; i < G_N_ELEMENTS(bad); i++) {
    g_autofree char *iso = sqlenvfs_time_format_iso(bad[i]);
    g_autofree char *name = sqlenvfs_time_format_name(bad[i], TRUE);
    g_autofree char *local = sqlenvfs_time_format_local(bad[i]);
    SqlenvfsTime t;
    gint64 us;
    ck_assert_msg(strstr(iso, "invalid time") != NULL, "%s", iso);
    ck_assert_msg(strstr(name, "invalid time") != NULL, "%s", name);
    ck_assert_msg(local != NULL && strstr(local, "invalid time") != NULL, "%s", local);
    ck_assert(!sqlenvfs_time_parse(iso, &t, NULL));
    ck_assert(!sqlenvfs_time_parse_name(name, &us));
  }
  {
    g_autofree char *last = sqlenvfs_time_format_iso(SQLENVFS_TIME_MAX_US);
    ck_assert_str_eq(last, "9999-12-31T23:59:59.999999Z");
  }
}
END_TEST

START_TEST(test_names_sort_by_time)
{
  /* Names sort by time, also across the ms fraction ('.' < 'Z' in bytes). */
  g_autofree char *a = sqlenvfs_time_format_name(T0, FALSE);
  g_autofree char *b = sqlenvfs_time_format_name(T0 + 1000, TRUE);
  g_autofree char *c = sqlenvfs_time_format_name(T0 + G_USEC_PER_SEC, FALSE);
  GPtrArray *names = g_ptr_array_new();
  g_ptr_array_add(names, c);
  g_ptr_array_add(names, b);
  g_ptr_array_add(names, (char *)"junk");
  g_ptr_array_add(names, a);
  g_ptr_array_sort(names, sqlenvfs_time_name_cmp);
  ck_assert_str_eq(g_ptr_array_index(names, 0), "junk");
  ck_assert_ptr_eq(g_ptr_array_index(names, 1), a);
  ck_assert_ptr_eq(g_ptr_array_index(names, 2), b);
  ck_assert_ptr_eq(g_ptr_array_index(names, 3), c);
  g_ptr_array_free(names, TRUE);
}
END_TEST

/* Every time written in the user documentation parses: the literal times in
 * README.md and the man page, and what each `date -u +FORMAT` command they
 * show prints right now. */
static guint
check_doc_times(const char *relpath)
{
  g_autofree char *path = g_build_filename(SRCDIR, relpath, NULL);
  g_autofree char *raw = NULL;
  g_autoptr(GError) error = NULL;
  g_autoptr(GRegex) literal = NULL, date_cmd = NULL;
  g_autoptr(GMatchInfo) m = NULL;
  char **parts;
  g_autofree char *text = NULL;
  guint n = 0;

  ck_assert_msg(g_file_get_contents(path, &raw, NULL, &error), "%s", error ? error->message : "");
  /* The man page escapes '-' as '\-'. */
  parts = g_strsplit(raw, "\\-", -1);
  text = g_strjoinv("-", parts);
  g_strfreev(parts);

  literal = g_regex_new("(?<![\\w@.:+-])("
                        "\\d{8}T\\d{6}(?:\\.\\d+)?Z"
                        "|\\d{4}-\\d\\d-\\d\\dT\\d\\d:\\d\\d:\\d\\d(?:\\.\\d+)?(?:Z|[+-]\\d\\d:\\d\\d)"
                        "|@\\d{6,}(?:\\.\\d+)?)(?![\\w.])",
                        0, 0, NULL);
  g_regex_match(literal, text, 0, &m);
  for (; g_match_info_matches(m); g_match_info_next(m, NULL)) {
    g_autofree char *word = g_match_info_fetch(m, 1);
    SqlenvfsTime t = { 0 };
    g_autoptr(GError) perr = NULL;
    ck_assert_msg(sqlenvfs_time_parse(word, &t, &perr), "%s: example '%s' does not parse: %s",
                  relpath, word, perr ? perr->message : "");
    n++;
  }
  g_clear_pointer(&m, g_match_info_unref);

  date_cmd = g_regex_new("date -u \\+([%A-Za-z.:T-]+)", 0, 0, NULL);
  g_regex_match(date_cmd, text, 0, &m);
  for (; g_match_info_matches(m); g_match_info_next(m, NULL)) {
    g_autofree char *fmt = g_match_info_fetch(m, 1);
    const char *argv[] = { "date", "-u", NULL, NULL };
    g_autofree char *arg = g_strconcat("+", fmt, NULL);
    g_autofree char *out = NULL;
    SqlenvfsTime t = { 0 };
    g_autoptr(GError) perr = NULL;
    int status = 0;

    argv[2] = arg;
    ck_assert(g_spawn_sync(NULL, (char **)argv, NULL, G_SPAWN_SEARCH_PATH, NULL, NULL, &out,
                           NULL, &status, NULL));
    g_strstrip(out);
    ck_assert_msg(sqlenvfs_time_parse(out, &t, &perr),
                  "%s: `date -u %s` prints '%s', which does not parse: %s", relpath, arg, out,
                  perr ? perr->message : "");
    n++;
  }
  return n;
}

START_TEST(test_doc_examples)
{
  /* At least the forms the docs list, so that a broken extraction fails. */
  ck_assert_uint_ge(check_doc_times("README.md"), 7);
  ck_assert_uint_ge(check_doc_times("doc/sqlenvfs.1"), 7);
}
END_TEST

static Suite *
suite(void)
{
  Suite *s = suite_create("timefmt");
  TCase *tc = tcase_create("parse");
  tcase_add_loop_test(tc, test_accepted, 0, G_N_ELEMENTS(accepted));
  tcase_add_loop_test(tc, test_rejected, 0, G_N_ELEMENTS(rejected));
  tcase_add_test(tc, test_no_zone);
  tcase_add_test(tc, test_field_out_of_range);
  tcase_add_test(tc, test_latest);
  tcase_add_test(tc, test_format_roundtrip);
  tcase_add_test(tc, test_format_local_offset_seconds);
  tcase_add_test(tc, test_format_out_of_range);
  tcase_add_test(tc, test_names_sort_by_time);
  tcase_add_test(tc, test_doc_examples);
  suite_add_tcase(s, tc);
  return s;
}

int
main(void)
{
  return testutil_run(suite());
}
