/*
 * timefmt.c — parsing and formatting of times (see timefmt.h for the forms).
 *
 * The parser is strict by design: a time that means something else than the
 * user thinks (a missing zone, a local time, a 13th month) is an error, never
 * a guess.
 */
#include "sqlenvfs/timefmt.h"
#include "sqlenvfs/error.h"

#include <string.h>

/* Read exactly @n digits at *p into *val, advancing *p. */
static gboolean
digits(const char **p, int n, int *val)
{
  int v = 0;
  for (int i = 0; i < n; i++) {
    char c = (*p)[i];
    if (!g_ascii_isdigit(c))
      return FALSE;
    v = v * 10 + (c - '0');
  }
  *p += n;
  *val = v;
  return TRUE;
}

/* Optional fraction ".d{1,9}" -> microseconds. Up to nine digits are
 * accepted (what `date +%N` prints); digits beyond the sixth are read and
 * ignored (truncated, never rounded up into a later microsecond). */
static gboolean
fraction(const char **p, gint64 *usec)
{
  gint64 v = 0;
  int n = 0;
  *usec = 0;
  if (**p != '.')
    return TRUE;
  (*p)++;
  while (g_ascii_isdigit(**p)) {
    if (n == 9)
      return FALSE;
    if (n < 6)
      v = v * 10 + (**p - '0');
    n++;
    (*p)++;
  }
  if (n == 0)
    return FALSE;
  n = MIN(n, 6);
  for (; n < 6; n++)
    v *= 10;
  *usec = v;
  return TRUE;
}

/* Why a field of a time that has the right shape is out of range, for its
 * error: "month 13 is out of range (01 to 12)" (newly allocated), or NULL
 * when every field is in range. (The year is checked against the range
 * with the offset applied, by the caller: 1969-12-31T23:30:00-01:00 is in
 * it.) */
static char *
field_problem(int y, int mo, int d, int h, int mi, int s)
{
  static const char *const months[] = { "January", "February", "March", "April", "May", "June",
                                        "July", "August", "September", "October", "November",
                                        "December" };
  if (mo < 1 || mo > 12)
    return g_strdup_printf("month %02d is out of range (01 to 12)", mo);
  if (y >= 1) {
    int n_days = g_date_get_days_in_month((GDateMonth)mo, (GDateYear)y);
    if (d < 1 || d > n_days)
      return g_strdup_printf("day %02d is out of range (01 to %02d in %s %04d)", d, n_days,
                             months[mo - 1], y);
  }
  if (h > 23)
    return g_strdup_printf("hour %02d is out of range (00 to 23; midnight is 00:00:00 of the "
                           "next day)", h);
  if (mi > 59)
    return g_strdup_printf("minute %02d is out of range (00 to 59)", mi);
  if (s > 59)
    return g_strdup_printf("second %02d is out of range (00 to 59; a leap second is not "
                           "accepted: give %02d:%02d:59.999999 for it)", s, h, mi);
  return NULL;
}

/* On a field out of range, FALSE and *@why (when @why is not NULL) saying
 * which (field_problem). */
static gboolean
civil_to_us(int y, int mo, int d, int h, int mi, int s, gint64 frac_us,
            int offset_s, gint64 *out, char **why)
{
  GDateTime *dt;
  char *problem = field_problem(y, mo, d, h, mi, s);
  if (problem != NULL) {
    if (why != NULL)
      *why = problem;
    else
      g_free(problem);
    return FALSE;
  }
  if (y < 1 || y > 9999)
    return FALSE;
  dt = g_date_time_new_utc(y, mo, d, h, mi, s);
  if (dt == NULL)
    return FALSE;
  *out = g_date_time_to_unix(dt) * G_USEC_PER_SEC + frac_us -
         (gint64)offset_s * G_USEC_PER_SEC;
  g_date_time_unref(dt);
  return TRUE;
}

/* The parsers: FALSE when @p is not a time; *@why (when @why is not NULL)
 * set as well when it has the shape of one with a field out of range. */
static gboolean
parse_basic(const char *p, gint64 *out, char **why)
{
  int y, mo, d, h, mi, s;
  gint64 frac;
  if (!digits(&p, 4, &y) || !digits(&p, 2, &mo) || !digits(&p, 2, &d) || *p++ != 'T' ||
      !digits(&p, 2, &h) || !digits(&p, 2, &mi) || !digits(&p, 2, &s) ||
      !fraction(&p, &frac) || *p++ != 'Z' || *p != '\0' || y < 1970)
    return FALSE;
  return civil_to_us(y, mo, d, h, mi, s, frac, 0, out, why);
}

/* "2026-11-28T16:14:00[.f](Z|+01:00)", or as `list` prints a time:
 * "2026-11-28 16:14:00[.f] +01:00" (a space on each side of the time, and
 * an offset: never a bare local time). An offset may carry seconds
 * ("+05:30:30", as `list` prints one that has them). */
static gboolean
parse_extended(const char *p, gint64 *out, char **why)
{
  int y, mo, d, h, mi, s, oh = 0, om = 0, os = 0, sign = 1;
  gint64 frac;
  gboolean spaced;
  const char *zone;
  if (!digits(&p, 4, &y) || *p++ != '-' || !digits(&p, 2, &mo) || *p++ != '-' ||
      !digits(&p, 2, &d))
    return FALSE;
  spaced = *p == ' ';
  if ((*p++ != 'T' && !spaced) || !digits(&p, 2, &h) || *p++ != ':' ||
      !digits(&p, 2, &mi) || *p++ != ':' || !digits(&p, 2, &s) || !fraction(&p, &frac) ||
      (spaced && (*p++ != ' ' || (*p != '+' && *p != '-'))))
    return FALSE;
  zone = p;
  if (*p == 'Z') {
    p++;
  } else if (*p == '+' || *p == '-') {
    sign = *p == '-' ? -1 : 1;
    p++;
    if (!digits(&p, 2, &oh) || *p++ != ':' || !digits(&p, 2, &om))
      return FALSE;
    if (*p == ':' && (p++, !digits(&p, 2, &os)))
      return FALSE;
  } else {
    return FALSE;
  }
  if (*p != '\0')
    return FALSE;
  if (oh > 23 || om > 59 || os > 59) {
    if (why != NULL)
      *why = g_strdup_printf("offset %s is out of range (hours 00 to 23, minutes and seconds "
                             "00 to 59)", zone);
    return FALSE;
  }
  return civil_to_us(y, mo, d, h, mi, s, frac, sign * (oh * 3600 + om * 60 + os), out, why);
}

static gboolean
parse_unix(const char *p, gint64 *out)
{
  gint64 secs = 0, frac;
  int n = 0;
  if (*p++ != '@')
    return FALSE;
  while (g_ascii_isdigit(*p)) {
    if (++n > 12) /* 253402300799 is 9999-12-31T23:59:59Z (the range: the caller) */
      return FALSE;
    secs = secs * 10 + (*p++ - '0');
  }
  if (n == 0 || !fraction(&p, &frac) || *p != '\0')
    return FALSE;
  *out = secs * G_USEC_PER_SEC + frac;
  return TRUE;
}

gboolean
sqlenvfs_time_parse(const char *text, SqlenvfsTime *out, GError **error)
{
  gint64 us = 0;
  gboolean ok;
  g_autofree char *why = NULL;

  g_return_val_if_fail(out != NULL, FALSE);
  if (text == NULL)
    text = "";
  if (strcmp(text, "latest") == 0 || strcmp(text, "earliest") == 0) {
    out->is_latest = text[0] == 'l';
    out->is_earliest = text[0] == 'e';
    out->us = 0;
    return TRUE;
  }
  if (text[0] == '@')
    ok = parse_unix(text, &us);
  else if (strlen(text) >= 5 && text[4] == '-')
    ok = parse_extended(text, &us, &why);
  else
    ok = parse_basic(text, &us, &why);
  if (!ok) {
    /* A time that needs only its zone: said so, as a local time is not
     * guessed (the same text would name another moment on another host). */
    static const char *const zones[] = { "Z", " +00:00" };
    g_autofree char *utc = NULL;
    gint64 ignored;
    for (gsize i = 0; why == NULL && utc == NULL && i < G_N_ELEMENTS(zones) && text[0] != '@' &&
                      *text;
         i++) {
      utc = g_strconcat(text, zones[i], NULL);
      if (!(strlen(utc) >= 5 && utc[4] == '-' ? parse_extended(utc, &ignored, &why)
                                              : parse_basic(utc, &ignored, &why)))
        g_clear_pointer(&utc, g_free);
    }
    /* The right shape with a field out of range: that field is named. */
    if (why != NULL)
      g_set_error(error, SQLENVFS_ERROR, SQLENVFS_ERROR_INVALID,
                  "not a time: '%s': %s", text, why);
    else if (utc != NULL)
      g_set_error(error, SQLENVFS_ERROR, SQLENVFS_ERROR_INVALID,
                  "not a time: '%s' has no time zone (for UTC: '%s'; or another offset, such as "
                  "+01:00: a time without one is not read as local time)", text, utc);
    else
      g_set_error(error, SQLENVFS_ERROR, SQLENVFS_ERROR_INVALID,
                  "not a time: '%s' (accepted forms: " SQLENVFS_TIME_FORMS ")", text);
    return FALSE;
  }
  /* An offset can carry a date at either end of the range past it. */
  if (us < 0 || us > SQLENVFS_TIME_MAX_US) {
    g_set_error(error, SQLENVFS_ERROR, SQLENVFS_ERROR_INVALID,
                "not a time: '%s' is outside 1970-01-01T00:00:00Z .. 9999-12-31T23:59:59Z in "
                "UTC (give a time in that range, as " SQLENVFS_TIME_FORMS ")", text);
    return FALSE;
  }
  out->is_latest = FALSE;
  out->is_earliest = FALSE;
  out->us = us;
  return TRUE;
}

gboolean
sqlenvfs_time_parse_name(const char *name, gint64 *us)
{
  return parse_basic(name, us, NULL);
}

gint
sqlenvfs_time_name_cmp(gconstpointer a, gconstpointer b)
{
  const char *na = *(const char *const *)a, *nb = *(const char *const *)b;
  gint64 ta, tb;
  gboolean va = parse_basic(na, &ta, NULL), vb = parse_basic(nb, &tb, NULL);

  if (va != vb)
    return va ? 1 : -1;
  if (va && ta != tb)
    return ta < tb ? -1 : 1;
  return strcmp(na, nb);
}

static GDateTime *
utc_of(gint64 us)
{
  return g_date_time_new_from_unix_utc(us / G_USEC_PER_SEC);
}

/* A time no parser returns (read from damaged data): said as what it is. */
static gboolean
is_out_of_range(gint64 us)
{
  return us < 0 || us > SQLENVFS_TIME_MAX_US;
}

static char *
format_out_of_range(gint64 us)
{
  return g_strdup_printf("invalid time (%" G_GINT64_FORMAT " us from 1970-01-01T00:00:00Z)", us);
}

char *
sqlenvfs_time_format_name(gint64 us, gboolean with_ms)
{
  g_autoptr(GDateTime) dt = NULL;
  g_autofree char *base = NULL;

  if (is_out_of_range(us))
    return format_out_of_range(us);
  dt = utc_of(us);
  base = g_date_time_format(dt, "%Y%m%dT%H%M%S");
  if (!with_ms)
    return g_strdup_printf("%sZ", base);
  return g_strdup_printf("%s.%03dZ", base, (int)((us % G_USEC_PER_SEC) / 1000));
}

char *
sqlenvfs_time_format_iso(gint64 us)
{
  g_autoptr(GDateTime) dt = NULL;
  g_autofree char *base = NULL;
  int frac = (int)(us % G_USEC_PER_SEC);
  char fbuf[16];
  int len;

  if (is_out_of_range(us))
    return format_out_of_range(us);
  dt = utc_of(us);
  base = g_date_time_format(dt, "%Y-%m-%dT%H:%M:%S");
  if (frac == 0)
    return g_strdup_printf("%sZ", base);
  g_snprintf(fbuf, sizeof fbuf, "%06d", frac);
  len = 6;
  while (len > 1 && fbuf[len - 1] == '0')
    len--;
  fbuf[len] = '\0';
  return g_strdup_printf("%s.%sZ", base, fbuf);
}

char *
sqlenvfs_time_format_local(gint64 us)
{
  g_autoptr(GDateTime) dt = NULL;

  if (is_out_of_range(us))
    return format_out_of_range(us);
  dt = g_date_time_new_from_unix_local(us / G_USEC_PER_SEC);
  if (dt == NULL) /* the local date is past year 9999 */
    return sqlenvfs_time_format_iso(us);
  /* An offset with seconds (a zone before standard time, a POSIX TZ) is
   * printed with them, so that the time reads back as the same instant. */
  return g_date_time_format(dt, g_date_time_get_utc_offset(dt) % G_TIME_SPAN_MINUTE != 0
                                  ? "%Y-%m-%d %H:%M:%S %::z"
                                  : "%Y-%m-%d %H:%M:%S %:z");
}
