/*
 * root.c — finding the project directory, its layout, settings and locks.
 */
#include "sqlenvfs/root.h"
#include "sqlenvfs/archive.h"
#include "sqlenvfs/doctor.h"
#include "sqlenvfs/error.h"
#include "sqlenvfs/replica_conf.h"
#include "sqlenvfs/util.h"

#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

/* The errors of a settings file: one that concerns the whole file (a line
 * that is no setting, a section sqlenvfs does not know), and the first of
 * each section. A section with an error is read as if it were absent, and
 * what needs it refuses (sqlenvfs_root_settings_need). */
typedef struct {
  GError *all;
  GHashTable *by_group; /* section name -> GError * */
} SettingsProblems;

struct _SqlenvfsRoot {
  char *dir;
  char *paths[SQLENVFS_DIR_STATE + 1];
  SqlenvfsSettings settings;
  SettingsProblems problems; /* what sqlenvfs.conf holds that cannot be used */
  GHashTable *warned; /* file names of unsupported databases already logged */
};

/* Guards every root's warned set (list_dbs runs on several threads). */
static GMutex warned_lock;

static const char *const dir_rel[] = {
  [SQLENVFS_DIR_PROD] = "data/prod",
  [SQLENVFS_DIR_DEV] = "data/dev",
  [SQLENVFS_DIR_DAILY] = "backups/prod/daily",
  [SQLENVFS_DIR_SNAPSHOTS] = "backups/prod/snapshots",
  [SQLENVFS_DIR_WAL] = "backups/prod/wal_archives",
  [SQLENVFS_DIR_CACHE] = ".cache",
  [SQLENVFS_DIR_STATE] = ".sqlenvfs",
};

static void
settings_defaults(SqlenvfsSettings *s)
{
  s->default_db = g_strdup("app");
  s->daily_keep_days = 7;
  s->daily_keep_count = 0;
  s->snapshot_keep_days = 7;
  s->snapshot_keep_count = 0;
  s->pitr_keep_days = 7;
  s->segment_max_bytes = 64 * 1024 * 1024;
  s->segment_max_records = SQLENVFS_ARCHIVE_SEGMENT_MAX_RECORDS;
  s->checkpoint_pages = 1000;
  s->max_wal_bytes = 0;
  s->cache_max_bytes = G_GINT64_CONSTANT(4) * 1024 * 1024 * 1024;
  s->cache_min_free_bytes = G_GINT64_CONSTANT(1024) * 1024 * 1024;
  s->log_max_bytes = G_GINT64_CONSTANT(10) * 1024 * 1024;
  s->size_warn_bytes = G_GINT64_CONSTANT(10000000000);
  s->backup_max_age_hours = 26;
  s->archive_lag_warn_seconds = 60;
  s->doctor_acknowledged_bugs = g_new0(char *, 1);
  s->replica_url = NULL;
}

/* Read an integer key if present; FALSE with a message naming file, line
 * (of @text), group and key when it is present but not a number in [min,
 * max]. */
static gboolean
conf_int(GKeyFile *kf, const char *text, const char *file, const char *group, const char *key,
         gint64 min, gint64 max, gint64 *out, GError **error)
{
  guint line = sqlenvfs_settings_line(text, group, key);
  g_autoptr(GError) local = NULL;
  g_autofree char *raw = NULL;
  gint64 v;
  char *end = NULL;

  if (!g_key_file_has_key(kf, group, key, NULL))
    return TRUE;
  raw = g_key_file_get_value(kf, group, key, &local);
  if (raw != NULL) {
    g_strstrip(raw);
    errno = 0;
    v = g_ascii_strtoll(raw, &end, 10);
  }
  /* A size in bytes may carry a binary unit: K, M, G or T, alone or with
   * "iB" or "B" (all powers of 1024, as PostgreSQL reads "MB"). */
  if (raw != NULL && end != raw && *end != '\0' && errno == 0 && v >= 0 &&
      g_str_has_suffix(key, "-bytes")) {
    const char *units = "KMGT", *u = strchr(units, g_ascii_toupper(*end));
    if (*end != '\0' && u != NULL &&
        (end[1] == '\0' || g_ascii_strcasecmp(end + 1, "B") == 0 ||
         g_ascii_strcasecmp(end + 1, "iB") == 0)) {
      int shift = 10 * (int)(u - units + 1);
      if (v > (G_MAXINT64 >> shift))
        errno = ERANGE;
      else
        v <<= shift;
      end += strlen(end);
    }
  }
  if (raw == NULL || end == raw || *end != '\0' || (errno != 0 && errno != ERANGE)) {
    g_set_error(error, SQLENVFS_ERROR, SQLENVFS_ERROR_INVALID,
                "read settings %s: line %u: [%s] %s=%s is not a whole number%s (give one from %"
                G_GINT64_FORMAT " to %" G_GINT64_FORMAT ", or remove the line%s)",
                file, line, group, key, raw ? raw : "?",
                g_str_has_suffix(key, "-bytes") ? " of bytes, with K, M, G or T if you like" : "",
                min, max, raw && strchr(raw, '#') ? "; a comment has a line of its own" : "");
    return FALSE;
  }
  if (errno == ERANGE || v < min || v > max) {
    g_set_error(error, SQLENVFS_ERROR, SQLENVFS_ERROR_INVALID,
                "read settings %s: line %u: [%s] %s=%s is out of range: the allowed range is %"
                G_GINT64_FORMAT " to %" G_GINT64_FORMAT " (fix or remove the line)",
                file, line, group, key, raw, min, max);
    return FALSE;
  }
  *out = v;
  return TRUE;
}

/* Every setting sqlenvfs.conf may hold, section by section: the one list.
 * A name not here is refused: a misspelt setting would otherwise be left
 * out without a word (a retention that is not the one written, a limit that
 * is not set). A whole number (size: that of its field, an int or a gint64)
 * is read into its field of SqlenvfsSettings by load_settings; the others
 * (size 0) are read by name, [replica] by replica_conf.c. */
typedef struct {
  const char *group;
  const char *key;
  gsize size;
  gsize offset;
  gint64 min, max;
} KnownSetting;

#define NUMBER(group, key, field, min, max)                                          \
  { group, key, sizeof(((SqlenvfsSettings *)NULL)->field), offsetof(SqlenvfsSettings, field), \
    min, max }
#define OTHER(group, key) { group, key, 0, 0, 0, 0 }

static const KnownSetting known_settings[] = {
  OTHER("sqlenvfs", "default-db"),
  NUMBER("retention", "daily-keep-days", daily_keep_days, 0, 100000),
  NUMBER("retention", "daily-keep-count", daily_keep_count, 0, 1000000),
  NUMBER("retention", "snapshot-keep-days", snapshot_keep_days, 0, 100000),
  NUMBER("retention", "snapshot-keep-count", snapshot_keep_count, 0, 1000000),
  NUMBER("retention", "pitr-keep-days", pitr_keep_days, 0, 100000),
  NUMBER("archive", "segment-max-bytes", segment_max_bytes, 1 << 20,
         G_GINT64_CONSTANT(1) << 40),
  NUMBER("archive", "segment-max-records", segment_max_records, 16,
         G_GINT64_CONSTANT(1) << 32),
  NUMBER("archive", "checkpoint-pages", checkpoint_pages, 1, 1 << 30),
  NUMBER("archive", "max-wal-bytes", max_wal_bytes, 0, G_MAXINT64),
  NUMBER("cache", "max-bytes", cache_max_bytes, 0, G_MAXINT64),
  NUMBER("cache", "min-free-bytes", cache_min_free_bytes, 0, G_MAXINT64),
  NUMBER("mount", "log-max-bytes", log_max_bytes, 4096, G_MAXINT64),
  NUMBER("doctor", "size-warn-bytes", size_warn_bytes, 0, G_MAXINT64),
  NUMBER("doctor", "backup-max-age-hours", backup_max_age_hours, 1, 1000000),
  NUMBER("doctor", "archive-lag-warn-seconds", archive_lag_warn_seconds, 1, 100000000),
  OTHER("doctor", "acknowledged-bugs"),
  OTHER("replica", "url"),
  OTHER("replica", "endpoint"),
  OTHER("replica", "region"),
  OTHER("replica", "credentials-file"),
  OTHER("replica", "profile"),
  OTHER("replica", "sync-interval"),
  OTHER("replica", "check-interval"),
  OTHER("replica", "verify-tls"),
  OTHER("replica", "connect-timeout"),
  OTHER("replica", "low-speed-time"),
  OTHER("replica", "max-retries"),
  OTHER("replica", "backoff-base-ms"),
  OTHER("replica", "backoff-max-ms"),
  OTHER("replica", "lease-seconds"),
};

#undef NUMBER
#undef OTHER

/* The names of known_settings of @group ("[a], [b]" for every group when
 * NULL), in the order of the list, separated by ", "; "" when none. */
static GString *
known_names(const char *group)
{
  GString *names = g_string_new(NULL);
  for (gsize i = 0; i < G_N_ELEMENTS(known_settings); i++) {
    const KnownSetting *k = &known_settings[i];
    if (group != NULL && strcmp(k->group, group) != 0)
      continue;
    if (group == NULL && i > 0 && strcmp(known_settings[i - 1].group, k->group) == 0)
      continue;
    if (names->len > 0)
      g_string_append(names, ", ");
    if (group == NULL)
      g_string_append_printf(names, "[%s]", k->group);
    else
      g_string_append(names, k->key);
  }
  return names;
}

static gboolean
is_known(const char *group, const char *key)
{
  for (gsize i = 0; i < G_N_ELEMENTS(known_settings); i++)
    if (strcmp(known_settings[i].group, group) == 0 &&
        (key == NULL || strcmp(known_settings[i].key, key) == 0))
      return TRUE;
  return FALSE;
}

guint
sqlenvfs_settings_line(const char *text, const char *group, const char *key)
{
  g_auto(GStrv) lines = g_strsplit(text, "\n", -1);
  g_autofree char *header = g_strdup_printf("[%s]", group);
  gboolean in_group = FALSE;

  for (guint i = 0; lines[i] != NULL; i++) {
    g_autofree char *line = g_strstrip(g_strdup(lines[i]));
    const char *eq = strchr(line, '=');
    g_autofree char *name = NULL;
    if (*line == '[') {
      in_group = strcmp(line, header) == 0;
      continue;
    }
    if (!in_group || *line == '#' || eq == NULL)
      continue;
    name = g_strstrip(g_strndup(line, (gsize)(eq - line)));
    if (strcmp(name, key) == 0)
      return i + 1;
  }
  return 0;
}

/* FALSE and an error naming the first line of the settings file @file (its
 * text @text of @len bytes) that is not UTF-8 text (shown escaped) or
 * holds a NUL byte: GKeyFile's own message shows neither where nor what. */
static gboolean
check_text(const char *text, gsize len, const char *file, GError **error)
{
  const char *nul = memchr(text, '\0', len);
  g_auto(GStrv) lines = g_strsplit(text, "\n", -1);

  /* GKeyFile says only "contains line “\xef\xbf\xbd...” which is not a
   * key-value pair", with the bytes replaced, and no line number. */
  for (guint i = 0; lines[i] != NULL; i++) {
    g_autofree char *shown = NULL;
    if (g_utf8_validate(lines[i], -1, NULL))
      continue;
    shown = g_strescape(lines[i], NULL);
    g_set_error(error, SQLENVFS_ERROR, SQLENVFS_ERROR_INVALID,
                "read settings %s: line %u is not UTF-8 text: \"%s\" (write the file as "
                "UTF-8)", file, i + 1, shown);
    return FALSE;
  }
  if (nul != NULL) {
    guint line = 1;
    for (const char *p = text; p < nul; p++)
      line += *p == '\n';
    g_set_error(error, SQLENVFS_ERROR, SQLENVFS_ERROR_INVALID,
                "read settings %s: line %u holds a NUL byte, which a text file does not "
                "(remove it)", file, line);
    return FALSE;
  }
  return TRUE;
}

static void
problems_clear(SettingsProblems *p)
{
  g_clear_error(&p->all);
  g_clear_pointer(&p->by_group, g_hash_table_unref);
}

/* Keep @e (taken) as the problem of section @group, or of the whole file
 * when @group is NULL, unless one is kept for it already. */
static void
problem_add(SettingsProblems *p, const char *group, GError *e)
{
  if (group == NULL) {
    if (p->all == NULL)
      p->all = e;
    else
      g_error_free(e);
    return;
  }
  if (p->by_group == NULL)
    p->by_group = g_hash_table_new_full(g_str_hash, g_str_equal, g_free,
                                        (GDestroyNotify)g_error_free);
  if (g_hash_table_contains(p->by_group, group))
    g_error_free(e);
  else
    g_hash_table_insert(p->by_group, g_strdup(group), e);
}

/* The problem that stops what needs section @group: the whole file's, else
 * that section's; with @group NULL, the first of any (the whole file's,
 * else the first section's in the order of known_settings). */
static const GError *
problem_for(const SettingsProblems *p, const char *group)
{
  if (p->all != NULL || p->by_group == NULL)
    return p->all;
  if (group != NULL)
    return g_hash_table_lookup(p->by_group, group);
  for (gsize i = 0; i < G_N_ELEMENTS(known_settings); i++) {
    const GError *e = g_hash_table_lookup(p->by_group, known_settings[i].group);
    if (e != NULL)
      return e;
  }
  return NULL;
}

static GError *
settings_error(const char *file, const char *fmt, ...) G_GNUC_PRINTF(2, 3);

static GError *
settings_error(const char *file, const char *fmt, ...)
{
  va_list ap;
  g_autofree char *msg = NULL;
  va_start(ap, fmt);
  msg = g_strdup_vprintf(fmt, ap);
  va_end(ap);
  return g_error_new(SQLENVFS_ERROR, SQLENVFS_ERROR_INVALID, "read settings %s: %s", file, msg);
}

/* The line (from 1) of @text that opens section [@group], or 0. */
static guint
group_line(const char *text, const char *group)
{
  g_auto(GStrv) lines = g_strsplit(text, "\n", -1);
  g_autofree char *header = g_strdup_printf("[%s]", group);
  for (guint i = 0; lines[i] != NULL; i++)
    if (strcmp(g_strstrip(lines[i]), header) == 0)
      return i + 1;
  return 0;
}

/* A section or setting of @kf that is not one of known_settings, with the
 * names it could have been: an unknown section is the whole file's problem
 * (which section it was meant to be cannot be told), an unknown setting
 * its section's. */
static void
check_known_settings(GKeyFile *kf, const char *text, const char *file, SettingsProblems *p)
{
  g_auto(GStrv) groups = g_key_file_get_groups(kf, NULL);

  for (char **g = groups; *g != NULL; g++) {
    g_auto(GStrv) keys = NULL;
    if (!is_known(*g, NULL)) {
      g_autoptr(GString) names = known_names(NULL);
      problem_add(p, NULL,
                  settings_error(file, "line %u: [%s] is not a section sqlenvfs knows (the "
                                 "sections are %s; fix the name or remove the section)",
                                 group_line(text, *g), *g, names->str));
      continue;
    }
    keys = g_key_file_get_keys(kf, *g, NULL, NULL);
    for (char **k = keys; k != NULL && *k != NULL; k++) {
      g_autoptr(GString) list = NULL;
      if (is_known(*g, *k))
        continue;
      list = known_names(*g);
      problem_add(p, *g,
                  settings_error(file, "line %u: [%s] %s is not a setting sqlenvfs knows (the "
                                 "settings of [%s] are %s; fix the name or remove the line)",
                                 sqlenvfs_settings_line(text, *g, *k), *g, *k, *g, list->str));
    }
  }
}

static gboolean
has_control(const char *s)
{
  for (const char *c = s; *c; c = g_utf8_next_char(c))
    if (g_utf8_get_char(c) < 0x20 || (g_utf8_get_char(c) >= 0x7f && g_utf8_get_char(c) < 0xa0))
      return TRUE;
  return FALSE;
}

/* Every problem of the settings text @text that reading it line by line
 * finds: a line that is neither a section, a setting nor a comment, a
 * setting before any section (the whole file's problems, with which
 * GKeyFile would say no line), and in a section, a setting set twice, one
 * with a locale suffix ("key[de]", a translation GKeyFile keeps apart), a
 * comment after a value or a value in quotes (both read as part of it). */
static void
check_lines(const char *text, const char *file, SettingsProblems *p)
{
  g_auto(GStrv) lines = g_strsplit(text, "\n", -1);
  g_autoptr(GHashTable) seen = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
  g_autofree char *group = NULL; /* the section's name; NULL before the first */
  char high_bytes[129];          /* UTF-8 text is shown as such, controls escaped */

  for (int b = 0; b < 128; b++)
    high_bytes[b] = (char)(0x80 + b);
  high_bytes[128] = '\0';
  for (guint i = 0; lines[i] != NULL; i++) {
    g_autofree char *line = g_strstrip(g_strdup(lines[i]));
    g_autofree char *key = NULL, *id = NULL, *value = NULL, *shown = NULL;
    gsize len = strlen(line), vlen;
    const char *eq;
    guint first;
    if (*line == '\0' || *line == '#')
      continue;
    shown = g_strescape(line, has_control(line) ? NULL : high_bytes);
    if (*line == '[') {
      g_autofree char *name = len >= 2 ? g_strndup(line + 1, len - 2) : g_strdup("");
      if (line[len - 1] != ']' || *name == '\0' || strpbrk(name, "[]") != NULL ||
          has_control(name)) {
        problem_add(p, NULL, settings_error(file, "line %u: \"%s\" is no section name: a "
                                            "section is [name], the name one of those the man "
                                            "page lists (fix the line)", i + 1, shown));
        g_clear_pointer(&group, g_free);
        continue;
      }
      g_free(group);
      group = g_steal_pointer(&name);
      continue;
    }
    eq = strchr(line, '=');
    if (eq == NULL) {
      problem_add(p, NULL, settings_error(file, "line %u: \"%s\" is neither a [section], a "
                                          "setting (name = value) nor a comment (fix or remove "
                                          "the line)", i + 1, shown));
      continue;
    }
    key = g_strstrip(g_strndup(line, (gsize)(eq - line)));
    if (*key == '\0' || has_control(key)) {
      problem_add(p, NULL, settings_error(file, "line %u: \"%s\" names no setting before its "
                                          "'=' (fix or remove the line)", i + 1, shown));
      continue;
    }
    if (group == NULL) {
      problem_add(p, NULL, settings_error(file, "line %u: %s is set before any [section] (put "
                                          "it under its section)", i + 1, key));
      continue;
    }
    if (strchr(key, '[') != NULL) {
      problem_add(p, group, settings_error(file, "line %u: [%s] %s has a locale suffix, which "
                                           "sqlenvfs does not read (remove the [...] after the "
                                           "name)", i + 1, group, key));
      continue;
    }
    for (const char *h = strchr(eq + 1, '#'); h != NULL; h = strchr(h + 1, '#')) {
      if (h[-1] == ' ' || h[-1] == '\t') {
        problem_add(p, group, settings_error(file, "line %u: [%s] %s has a comment after its "
                                             "value, which would be read as part of it (put the "
                                             "comment on a line of its own)", i + 1, group, key));
        break;
      }
    }
    value = g_strstrip(g_strdup(eq + 1));
    vlen = strlen(value);
    if (has_control(value)) {
      problem_add(p, group, settings_error(file, "line %u: \"%s\": the value holds a control "
                                           "character (fix the line)", i + 1, shown));
      continue;
    }
    if (vlen >= 2 && (value[0] == '"' || value[0] == '\'') && value[vlen - 1] == value[0])
      problem_add(p, group, settings_error(file, "line %u: [%s] %s=%s: the quotes would be read "
                                           "as part of the value (write it without them)",
                                           i + 1, group, key, value));
    id = g_strdup_printf("[%s] %s", group, key);
    first = GPOINTER_TO_UINT(g_hash_table_lookup(seen, id));
    if (first != 0) {
      problem_add(p, group, settings_error(file, "[%s] %s is set twice, on lines %u and %u "
                                           "(keep one)", group, key, first, i + 1));
      continue;
    }
    g_hash_table_insert(seen, g_steal_pointer(&id), GUINT_TO_POINTER(i + 1));
  }
}

/* Read every whole number of known_settings present in @kf into @s; a
 * value that is not a number in its range is its section's problem. */
static void
load_numbers(GKeyFile *kf, const char *text, const char *file, SqlenvfsSettings *s,
             SettingsProblems *p)
{
  for (gsize i = 0; i < G_N_ELEMENTS(known_settings); i++) {
    const KnownSetting *k = &known_settings[i];
    char *field = (char *)s + k->offset;
    GError *bad = NULL;
    gint64 v;
    if (k->size == sizeof(int)) {
      int iv;
      memcpy(&iv, field, sizeof iv);
      v = iv;
    } else if (k->size == sizeof(gint64)) {
      memcpy(&v, field, sizeof v);
    } else {
      g_assert(k->size == 0);
      continue;
    }
    if (!conf_int(kf, text, file, k->group, k->key, k->min, k->max, &v, &bad)) {
      problem_add(p, k->group, bad);
      continue;
    }
    if (k->size == sizeof(int)) {
      int iv = (int)v;
      g_assert(k->max <= G_MAXINT);
      memcpy(field, &iv, sizeof iv);
    } else {
      memcpy(field, &v, sizeof v);
    }
  }
}

/* The settings of a section with a problem back to their defaults: it is
 * read as if it were absent. */
static void
keep_defaults_of_bad_sections(SqlenvfsSettings *s, const SettingsProblems *p)
{
  SqlenvfsSettings d;
  settings_defaults(&d);
  for (gsize i = 0; i < G_N_ELEMENTS(known_settings); i++) {
    const KnownSetting *k = &known_settings[i];
    if (k->size != 0 && problem_for(p, k->group) != NULL)
      memcpy((char *)s + k->offset, (const char *)&d + k->offset, k->size);
  }
  if (problem_for(p, "sqlenvfs") != NULL) {
    char *t = s->default_db;
    s->default_db = d.default_db;
    d.default_db = t;
  }
  if (problem_for(p, "doctor") != NULL) {
    char **t = s->doctor_acknowledged_bugs;
    s->doctor_acknowledged_bugs = d.doctor_acknowledged_bugs;
    d.doctor_acknowledged_bugs = t;
  }
  g_free(d.default_db);
  g_strfreev(d.doctor_acknowledged_bugs);
}

static void
load_default_db(GKeyFile *kf, const char *text, const char *file, SqlenvfsSettings *s,
                SettingsProblems *p)
{
  g_autofree char *name = NULL;
  if (!g_key_file_has_key(kf, "sqlenvfs", "default-db", NULL))
    return;
  name = g_key_file_get_string(kf, "sqlenvfs", "default-db", NULL);
  if (name)
    g_strstrip(name);
  if (!sqlenvfs_db_name_is_valid(name)) {
    problem_add(p, "sqlenvfs",
                settings_error(file, "line %u: [sqlenvfs] default-db=%s is not a supported "
                               "database name: %s (fix the line)",
                               sqlenvfs_settings_line(text, "sqlenvfs", "default-db"),
                               name ? name : "", sqlenvfs_db_name_problem(name)));
    return;
  }
  g_free(s->default_db);
  s->default_db = g_steal_pointer(&name);
}

static void
load_acknowledged_bugs(GKeyFile *kf, const char *text, const char *file, SqlenvfsSettings *s,
                       SettingsProblems *p)
{
  g_auto(GStrv) ids = NULL;
  g_autoptr(GPtrArray) clean = g_ptr_array_new_with_free_func(g_free);

  if (!g_key_file_has_key(kf, "doctor", "acknowledged-bugs", NULL))
    return;
  ids = g_key_file_get_string_list(kf, "doctor", "acknowledged-bugs", NULL, NULL);
  /* A list separated by ';' (GKeyFile's way) or ','; blanks are ignored. */
  for (char **id = ids; id && *id; id++) {
    g_auto(GStrv) parts = g_strsplit(*id, ",", -1);
    for (char **q = parts; *q; q++) {
      g_autofree char *ids_known = NULL;
      if (*g_strstrip(*q) == '\0')
        continue;
      if (!sqlenvfs_doctor_bug_is_known(*q)) {
        ids_known = sqlenvfs_doctor_bug_ids();
        problem_add(p, "doctor",
                    settings_error(file, "line %u: [doctor] acknowledged-bugs names '%s', which "
                                   "is no bug the doctor knows (the known ones: %s; fix the "
                                   "line)", sqlenvfs_settings_line(text, "doctor",
                                                                   "acknowledged-bugs"),
                                   *q, ids_known));
        return;
      }
      g_ptr_array_add(clean, g_strdup(*q));
    }
  }
  g_ptr_array_add(clean, NULL);
  g_strfreev(s->doctor_acknowledged_bugs);
  s->doctor_acknowledged_bugs = (char **)g_ptr_array_free(g_steal_pointer(&clean), FALSE);
}

/* How large a settings file may be: a few hundred bytes are usual. */
#define SETTINGS_MAX_BYTES (1 << 20)

gboolean
sqlenvfs_settings_read(const char *file, char **text, gsize *len, GError **error)
{
  struct stat st;
  gboolean is_link = lstat(file, &st) == 0 && S_ISLNK(st.st_mode);
  int fd;

  *text = NULL;
  *len = 0;
  /* Not blocked by a FIFO, nor read whole from a device. */
  fd = open(file, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) {
    int errsv = errno;
    if (errsv == ENOENT && !is_link) {
      g_set_error(error, SQLENVFS_ERROR, SQLENVFS_ERROR_NOT_FOUND, "read settings %s: no such "
                  "file", file);
      return FALSE;
    }
    g_set_error(error, SQLENVFS_ERROR, SQLENVFS_ERROR_INVALID, "read settings %s: %s (%s)",
                file, g_strerror(errsv),
                is_link ? "it is a link to a file that cannot be read: fix the link, or put "
                          "the file in its place"
                        : "make it a file sqlenvfs can read");
    return FALSE;
  }
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_size > SETTINGS_MAX_BYTES) {
    gboolean is_reg = S_ISREG(st.st_mode);
    close(fd);
    g_set_error(error, SQLENVFS_ERROR, SQLENVFS_ERROR_INVALID, "read settings %s: %s (make it a "
                "text file of settings)", file,
                is_reg ? "larger than 1 MiB" : "not a regular file");
    return FALSE;
  }
  {
    g_autoptr(GIOChannel) ch = g_io_channel_unix_new(fd);
    g_autoptr(GError) local = NULL;
    g_io_channel_set_close_on_unref(ch, TRUE);
    if (g_io_channel_set_encoding(ch, NULL, &local) != G_IO_STATUS_NORMAL ||
        g_io_channel_read_to_end(ch, text, len, &local) != G_IO_STATUS_NORMAL) {
      g_set_error(error, SQLENVFS_ERROR, SQLENVFS_ERROR_INVALID, "read settings %s: %s (make it "
                  "a file sqlenvfs can read)", file, local->message);
      return FALSE;
    }
  }
  return TRUE;
}

GKeyFile *
sqlenvfs_settings_keyfile(const char *file, GError **error)
{
  g_autoptr(GKeyFile) kf = g_key_file_new();
  g_autoptr(GError) local = NULL;
  g_autofree char *text = NULL;
  const char *body;
  gsize len;
  if (!sqlenvfs_settings_read(file, &text, &len, error))
    return NULL;
  body = sqlenvfs_settings_text(text, &len);
  if (!g_key_file_load_from_data(kf, body, len, G_KEY_FILE_NONE, &local)) {
    g_set_error(error, SQLENVFS_ERROR, SQLENVFS_ERROR_INVALID, "read settings %s: %s (fix the "
                "file)", file, local->message);
    return NULL;
  }
  return g_steal_pointer(&kf);
}

/* Read the settings file @file into @s (its defaults where the file sets
 * nothing, or where the section has a problem) and its problems into @p.
 * No file is no problem. */
/* The settings text @text (@len bytes, as read from @file) into @s (its
 * defaults where it sets nothing, or where the section has a problem) and
 * its problems into @p; @s holds the defaults already. */
static void
parse_settings(const char *file, const char *text, gsize len, SqlenvfsSettings *s,
               SettingsProblems *p)
{
  g_autoptr(GKeyFile) kf = g_key_file_new();
  g_autoptr(GError) local = NULL;
  const char *body = sqlenvfs_settings_text(text, &len);

  if (!check_text(body, len, file, &local)) {
    problem_add(p, NULL, g_steal_pointer(&local));
    return;
  }
  check_lines(body, file, p);
  if (p->all != NULL)
    return;
  if (!g_key_file_load_from_data(kf, body, len, G_KEY_FILE_NONE, &local)) {
    problem_add(p, NULL, settings_error(file, "%s (fix the file)", local->message));
    return;
  }
  check_known_settings(kf, body, file, p);
  /* [replica] too: a value a replica's commands would refuse is found
   * here, not only when the archiver starts to ship. */
  if (!sqlenvfs_replica_conf_check_file(kf, body, file, &local))
    problem_add(p, "replica", g_steal_pointer(&local));
  load_default_db(kf, body, file, s, p);
  load_numbers(kf, body, file, s, p);
  load_acknowledged_bugs(kf, body, file, s, p);
  s->replica_url = g_key_file_get_string(kf, "replica", "url", NULL);
  if (s->replica_url != NULL && *g_strstrip(s->replica_url) == '\0')
    g_clear_pointer(&s->replica_url, g_free);
  keep_defaults_of_bad_sections(s, p);
}

/* Read the settings file @file into @s and its problems into @p
 * (parse_settings). No file is no problem. */
static void
read_settings(const char *file, SqlenvfsSettings *s, SettingsProblems *p)
{
  g_autoptr(GError) local = NULL;
  g_autofree char *text = NULL;
  gsize len = 0;

  settings_defaults(s);
  if (!sqlenvfs_settings_read(file, &text, &len, &local)) {
    if (!g_error_matches(local, SQLENVFS_ERROR, SQLENVFS_ERROR_NOT_FOUND))
      problem_add(p, NULL, g_steal_pointer(&local));
    return;
  }
  parse_settings(file, text, len, s, p);
}

const char *
sqlenvfs_settings_text(const char *text, gsize *len)
{
  if (*len >= 3 && memcmp(text, "\xef\xbb\xbf", 3) == 0) {
    *len -= 3;
    return text + 3;
  }
  return text;
}

gboolean
sqlenvfs_settings_text_check(const char *file, const char *text, gsize len, const char *group,
                             GError **error)
{
  SettingsProblems p = { 0 };
  SqlenvfsSettings s;
  const GError *e;
  gboolean ok;

  settings_defaults(&s);
  parse_settings(file, text, len, &s, &p);
  e = problem_for(&p, group);
  ok = e == NULL;
  if (!ok)
    g_propagate_error(error, g_error_copy(e));
  g_free(s.default_db);
  g_strfreev(s.doctor_acknowledged_bugs);
  g_free(s.replica_url);
  problems_clear(&p);
  return ok;
}

static void
load_settings(SqlenvfsRoot *root)
{
  g_autofree char *file = g_build_filename(root->dir, "sqlenvfs.conf", NULL);
  read_settings(file, &root->settings, &root->problems);
}

SqlenvfsRoot *
sqlenvfs_root_open(const char *dir, SqlenvfsRootMode mode, GError **error)
{
  return sqlenvfs_root_open_from(dir, "--root", mode, error);
}

SqlenvfsRoot *
sqlenvfs_root_open_from(const char *dir, const char *given_as, SqlenvfsRootMode mode,
                        GError **error)
{
  g_autoptr(SqlenvfsRoot) root = g_new0(SqlenvfsRoot, 1);
  const char *src = given_as;
  g_autofree char *cwd = NULL;

  if (dir == NULL || *dir == '\0') {
    dir = g_getenv("SQLENVFS_ROOT");
    src = "$SQLENVFS_ROOT";
  }
  if (dir == NULL || *dir == '\0') {
    cwd = g_get_current_dir();
    dir = cwd;
    src = "the current directory";
  }
  root->dir = g_canonicalize_filename(dir, NULL);
  for (int i = 0; i <= SQLENVFS_DIR_STATE; i++)
    root->paths[i] = g_build_filename(root->dir, dir_rel[i], NULL);

  if (mode == SQLENVFS_ROOT_MUST_EXIST) {
    if (g_file_test(root->dir, G_FILE_TEST_EXISTS) &&
        !g_file_test(root->dir, G_FILE_TEST_IS_DIR)) {
      g_set_error(error, SQLENVFS_ERROR, SQLENVFS_ERROR_INVALID,
                  "open root %s (from %s): it is a file, not a directory (name the root "
                  "directory, the one holding data/prod)",
                  root->dir, src);
      return NULL;
    }
    if (!g_file_test(root->dir, G_FILE_TEST_IS_DIR)) {
      g_autofree char *root_word = sqlenvfs_shell_word(root->dir);
      g_set_error(error, SQLENVFS_ERROR, SQLENVFS_ERROR_NOT_FOUND,
                  "open root %s (from %s): no such directory (create one with "
                  "`sqlenvfs init --root %s`)",
                  root->dir, src, root_word);
      return NULL;
    }
    if (!g_file_test(root->paths[SQLENVFS_DIR_PROD], G_FILE_TEST_IS_DIR)) {
      g_set_error(error, SQLENVFS_ERROR, SQLENVFS_ERROR_NOT_FOUND,
                  "open root %s (from %s): not a sqlenvfs root, data/prod is missing "
                  "(run `sqlenvfs init` there, or name another root; to restore from a copy "
                  "of a root's backups/ alone, `mkdir -p %s` is enough)",
                  root->dir, src, root->paths[SQLENVFS_DIR_PROD]);
      return NULL;
    }
  } else if (g_file_test(root->dir, G_FILE_TEST_EXISTS) &&
             !g_file_test(root->dir, G_FILE_TEST_IS_DIR)) {
    g_set_error(error, SQLENVFS_ERROR, SQLENVFS_ERROR_INVALID,
                "open root %s: exists and is not a directory (choose another --root)",
                root->dir);
    return NULL;
  }
  load_settings(root);
  return g_steal_pointer(&root);
}

void
sqlenvfs_root_free(SqlenvfsRoot *root)
{
  if (root == NULL)
    return;
  for (int i = 0; i <= SQLENVFS_DIR_STATE; i++)
    g_free(root->paths[i]);
  g_free(root->settings.default_db);
  g_strfreev(root->settings.doctor_acknowledged_bugs);
  g_free(root->settings.replica_url);
  problems_clear(&root->problems);
  if (root->warned)
    g_hash_table_destroy(root->warned);
  g_free(root->dir);
  g_free(root);
}

const char *
sqlenvfs_root_dir(const SqlenvfsRoot *root)
{
  return root->dir;
}

const SqlenvfsSettings *
sqlenvfs_root_settings(const SqlenvfsRoot *root)
{
  return &root->settings;
}

gboolean
sqlenvfs_root_settings_need(const SqlenvfsRoot *root, const char *group, GError **error)
{
  const GError *e = problem_for(&root->problems, group);
  if (e == NULL)
    return TRUE;
  g_propagate_error(error, g_error_copy(e));
  return FALSE;
}

const GError *
sqlenvfs_root_settings_problem(const SqlenvfsRoot *root)
{
  return problem_for(&root->problems, NULL);
}

GPtrArray *
sqlenvfs_root_settings_problems(const SqlenvfsRoot *root)
{
  GPtrArray *out = g_ptr_array_new_with_free_func(g_free);
  const SettingsProblems *p = &root->problems;
  if (p->all != NULL) {
    g_ptr_array_add(out, g_strdup_printf("%s; until it is fixed every section is read as if "
                                         "absent: what needs one refuses, the rest goes on",
                                         p->all->message));
    return out;
  }
  for (gsize i = 0; p->by_group != NULL && i < G_N_ELEMENTS(known_settings); i++) {
    const char *g = known_settings[i].group;
    const GError *e = g_hash_table_lookup(p->by_group, g);
    if (e == NULL || (i > 0 && strcmp(known_settings[i - 1].group, g) == 0))
      continue;
    g_ptr_array_add(out, g_strdup_printf("%s; until it is fixed [%s] is read as if absent: what "
                                         "needs it refuses, the rest goes on",
                                         e->message, g));
  }
  return out;
}

void
sqlenvfs_root_warn_settings(const SqlenvfsRoot *root)
{
  g_autoptr(GPtrArray) problems = sqlenvfs_root_settings_problems(root);
  for (guint i = 0; i < problems->len; i++)
    g_warning("%s", (char *)problems->pdata[i]);
}

const char *
sqlenvfs_root_path(const SqlenvfsRoot *root, SqlenvfsDir which)
{
  g_return_val_if_fail(which <= SQLENVFS_DIR_STATE, NULL);
  return root->paths[which];
}

gboolean
sqlenvfs_root_check_room(const SqlenvfsRoot *root, const char *dir, guint64 need,
                         const char *what, GError **error)
{
  return sqlenvfs_root_check_room_then(root, dir, need, what,
                                       "nothing was written (free space, or write it to a "
                                       "filesystem of its own)", error);
}

gboolean
sqlenvfs_root_check_room_then(const SqlenvfsRoot *root, const char *dir, guint64 need,
                              const char *what, const char *then, GError **error)
{
  guint64 avail, min_free = (guint64)sqlenvfs_root_settings(root)->cache_min_free_bytes;
  g_autoptr(GPtrArray) names = NULL;
  g_autofree char *prod = NULL, *s_need = NULL, *s_avail = NULL, *s_min = NULL;
  struct stat dst;
  struct statvfs sv;

  /* The room to leave is the operator's, never a default put in place of a
   * [cache] with an error. */
  if (!sqlenvfs_root_settings_need(root, "cache", error)) {
    g_prefix_error(error, "%s: the room to leave free cannot be read: ", what);
    return FALSE;
  }
  if (stat(dir, &dst) != 0 || statvfs(dir, &sv) != 0)
    return TRUE;
  names = sqlenvfs_root_list_dbs(root);
  for (guint i = 0; i < names->len && prod == NULL; i++) {
    g_autofree char *src = sqlenvfs_root_prod_db(root, names->pdata[i]);
    struct stat st;
    if (stat(src, &st) == 0 && st.st_dev == dst.st_dev)
      prod = g_steal_pointer(&src);
  }
  avail = (guint64)sv.f_bavail * sv.f_frsize;
  if (prod == NULL || avail >= need + min_free)
    return TRUE;
  s_need = sqlenvfs_format_size(need);
  s_avail = sqlenvfs_format_size(avail);
  s_min = sqlenvfs_format_size(min_free);
  g_set_error(error, SQLENVFS_ERROR, SQLENVFS_ERROR_NOSPACE,
              "%s (%s) would leave less than [cache] min-free-bytes (%s) of the %s free on the "
              "filesystem of production (%s), which it keeps for its commits: %s",
              what, s_need, s_min, s_avail, prod, then);
  return FALSE;
}

char *
sqlenvfs_root_wal_bound_reached(const SqlenvfsRoot *root, const char *wal, gint64 held_size,
                                gboolean check_max, gboolean check_room, gint64 *size)
{
  const SqlenvfsSettings *s = sqlenvfs_root_settings(root);
  struct statvfs sv;
  struct stat st;
  guint64 avail;

  if (stat(wal, &st) != 0 || (gint64)st.st_size <= held_size)
    return NULL; /* not grown since the hold began: it holds nothing new */
  *size = (gint64)st.st_size;
  if (check_max && s->max_wal_bytes > 0 && (gint64)st.st_size > s->max_wal_bytes) {
    g_autofree char *max = sqlenvfs_format_size((guint64)s->max_wal_bytes);
    return g_strdup_printf("past [archive] max-wal-bytes (%s)", max);
  }
  if (!check_room || s->cache_min_free_bytes <= 0 || statvfs(wal, &sv) != 0)
    return NULL;
  avail = (guint64)sv.f_bavail * sv.f_frsize;
  if (avail >= (guint64)s->cache_min_free_bytes)
    return NULL;
  {
    g_autofree char *s_avail = sqlenvfs_format_size(avail);
    g_autofree char *s_min = sqlenvfs_format_size((guint64)s->cache_min_free_bytes);
    return g_strdup_printf("and production's filesystem has %s free, less than [cache] "
                           "min-free-bytes (%s)", s_avail, s_min);
  }
}

int
sqlenvfs_root_data_mode(const SqlenvfsRoot *root, const char *db)
{
  g_autoptr(GPtrArray) names = NULL;
  struct stat st;
  int mode = 0666;
  gboolean any = FALSE;

  if (db != NULL) {
    g_autofree char *path = sqlenvfs_root_prod_db(root, db);
    if (stat(path, &st) == 0)
      return sqlenvfs_copy_mode(&st);
  }
  names = sqlenvfs_root_list_dbs(root);
  for (guint i = 0; i < names->len; i++) {
    g_autofree char *path = sqlenvfs_root_prod_db(root, names->pdata[i]);
    if (stat(path, &st) == 0) {
      mode &= sqlenvfs_copy_mode(&st);
      any = TRUE;
    }
  }
  return any ? mode & 0666 : 0644;
}

char *
sqlenvfs_root_path_blocker(const SqlenvfsRoot *root, SqlenvfsDir which, gboolean *is_link)
{
  const char *path = root->paths[which];
  gsize n = strlen(root->dir);

  /* root->dir is canonical and every path is built under it. */
  g_assert(strncmp(path, root->dir, n) == 0);
  for (gsize i = n + (n > 1 ? 1 : 0);; i++) {
    if (path[i] == '/' || path[i] == '\0') {
      g_autofree char *dir = g_strndup(path, i);
      struct stat st;
      if (lstat(dir, &st) != 0)
        return NULL; /* made by the command itself, as a directory */
      if (S_ISLNK(st.st_mode) || !S_ISDIR(st.st_mode)) {
        if (is_link)
          *is_link = S_ISLNK(st.st_mode);
        return g_steal_pointer(&dir);
      }
    }
    if (path[i] == '\0')
      return NULL;
  }
}

char *
sqlenvfs_root_db_link(const SqlenvfsRoot *root, SqlenvfsDir which, const char *path)
{
  gboolean is_link = FALSE;
  char *blocker;

  /* Production is read through a link (to it, or to its directory) as
   * every command and the application read it: its -wal and -shm are
   * where the application's are. Development is sqlenvfs's to write. */
  if (which == SQLENVFS_DIR_PROD)
    return NULL;
  blocker = sqlenvfs_root_path_blocker(root, which, &is_link);
  if (blocker != NULL && is_link)
    return blocker;
  g_free(blocker);
  for (gsize i = 0; i < SQLENVFS_N_DB_FILES; i++) {
    g_autofree char *p = g_strconcat(path, sqlenvfs_db_files[i], NULL);
    struct stat st;
    if (lstat(p, &st) == 0 && S_ISLNK(st.st_mode))
      return g_steal_pointer(&p);
  }
  return NULL;
}

gboolean
sqlenvfs_root_refuse_links(const SqlenvfsRoot *root, SqlenvfsDir which, const char *what,
                           GError **error)
{
  gboolean is_link = FALSE;
  g_autofree char *blocker = sqlenvfs_root_path_blocker(root, which, &is_link);

  /* What is no directory is left to the mkdir that meets it, which says so. */
  return blocker == NULL || !is_link || sqlenvfs_refuse_symlink(blocker, what, error);
}

gboolean
sqlenvfs_root_ensure_layout(SqlenvfsRoot *root, GError **error)
{
  int backups = sqlenvfs_mode_dir(sqlenvfs_root_data_mode(root, NULL));
  for (int i = 0; i <= SQLENVFS_DIR_STATE; i++) {
    int mode = i == SQLENVFS_DIR_STATE || i == SQLENVFS_DIR_CACHE ? 0700
               : i == SQLENVFS_DIR_PROD || i == SQLENVFS_DIR_DEV ? 0755
                                                                   : backups;
    if (!sqlenvfs_root_refuse_links(root, (SqlenvfsDir)i, "lay out the root", error) ||
        !sqlenvfs_mkdir_p(root->paths[i], mode, error))
      return FALSE;
  }
  return TRUE;
}

char *
sqlenvfs_root_prod_db(const SqlenvfsRoot *root, const char *name)
{
  g_autofree char *file = g_strconcat(name, ".db", NULL);
  return g_build_filename(root->paths[SQLENVFS_DIR_PROD], file, NULL);
}

char *
sqlenvfs_root_dev_db(const SqlenvfsRoot *root, const char *name)
{
  g_autofree char *file = g_strconcat(name, ".db", NULL);
  return g_build_filename(root->paths[SQLENVFS_DIR_DEV], file, NULL);
}

static gint
cmp_str(gconstpointer a, gconstpointer b)
{
  return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Every "<stem>.db" of data/prod (not hidden), and whether each stem is a
 * supported name: to @names (supported) and @unsupported ("file: why"). */
static void
scan_prod(const SqlenvfsRoot *root, GPtrArray *names, GPtrArray *unsupported)
{
  g_autoptr(GDir) d = g_dir_open(root->paths[SQLENVFS_DIR_PROD], 0, NULL);
  const char *ent;

  while (d != NULL && (ent = g_dir_read_name(d)) != NULL) {
    g_autofree char *stem = NULL;
    const char *why;
    if (!g_str_has_suffix(ent, ".db") || ent[0] == '.')
      continue;
    stem = g_strndup(ent, strlen(ent) - 3);
    why = sqlenvfs_db_name_problem(stem);
    if (why == NULL) {
      if (names)
        g_ptr_array_add(names, g_steal_pointer(&stem));
    } else if (unsupported) {
      g_autofree char *shown = g_strescape(ent, NULL);
      g_ptr_array_add(unsupported,
                      g_strdup_printf("%s/%s: %s", root->paths[SQLENVFS_DIR_PROD], shown, why));
    }
  }
  if (names)
    g_ptr_array_sort(names, cmp_str);
  if (unsupported)
    g_ptr_array_sort(unsupported, cmp_str);
}

GPtrArray *
sqlenvfs_root_list_dbs(const SqlenvfsRoot *root)
{
  GPtrArray *names = g_ptr_array_new_with_free_func(g_free);
  g_autoptr(GPtrArray) unsupported = g_ptr_array_new_with_free_func(g_free);
  SqlenvfsRoot *r = (SqlenvfsRoot *)root; /* only its warned set changes */

  scan_prod(root, names, unsupported);
  /* A skipped database is said once per root object (a process), where it
   * is skipped: every command and the mount list databases through here. */
  g_mutex_lock(&warned_lock);
  for (guint i = 0; i < unsupported->len; i++) {
    if (r->warned == NULL)
      r->warned = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
    if (g_hash_table_add(r->warned, g_strdup(unsupported->pdata[i])))
      g_warning("%s; this database is skipped (rename the file to use it)",
                (const char *)unsupported->pdata[i]);
  }
  g_mutex_unlock(&warned_lock);
  return names;
}

void
sqlenvfs_root_forget_warnings(SqlenvfsRoot *root)
{
  g_mutex_lock(&warned_lock);
  if (root->warned)
    g_hash_table_remove_all(root->warned);
  g_mutex_unlock(&warned_lock);
}

GPtrArray *
sqlenvfs_root_list_unsupported(const SqlenvfsRoot *root)
{
  GPtrArray *out = g_ptr_array_new_with_free_func(g_free);
  scan_prod(root, NULL, out);
  return out;
}

const char *
sqlenvfs_db_name_problem(const char *name)
{
  if (name == NULL || name[0] == '\0')
    return "an empty database name";
  if (name[0] == '.')
    return "a name starting with '.' is hidden";
  if (strlen(name) > 200)
    return "the name is longer than 200 bytes";
  if (!g_utf8_validate(name, -1, NULL))
    return "the name is not valid UTF-8";
  for (const char *p = name; *p; p = g_utf8_next_char(p)) {
    gunichar c = g_utf8_get_char(p);
    if (c == '/')
      return "the name contains '/'";
    if (c < 0x20 || (c >= 0x7f && c < 0xa0))
      return "the name contains a control character";
    if (c == '[' || c == ']')
      return "the name contains '[' or ']', which a MANIFEST group name cannot hold";
  }
  return NULL;
}

gboolean
sqlenvfs_db_name_is_valid(const char *name)
{
  return sqlenvfs_db_name_problem(name) == NULL;
}

/* FALSE with the INVALID error saying that @name is not supported for
 * @problem. */
static gboolean
name_error(const char *name, const char *problem, GError **error)
{
  g_autofree char *shown_name = g_strdup(name);
  g_autofree char *shown = NULL;
  /* Shown as written where it is text (controls escaped), the bytes that
   * are not escaped; a long one cut, as no terminal wants 200 of them. */
  char high[129];
  for (int i = 0; i < 128; i++)
    high[i] = (char)(0x80 + i);
  high[128] = '\0';
  if (g_utf8_validate(shown_name, -1, NULL) && g_utf8_strlen(shown_name, -1) > 64) {
    g_autofree char *cut = g_utf8_substring(shown_name, 0, 60);
    g_free(shown_name);
    shown_name = g_strconcat(cut, "...", NULL);
  }
  gboolean text = g_utf8_validate(shown_name, -1, NULL);
  for (const char *p = shown_name; text && *p; p = g_utf8_next_char(p))
    text = g_utf8_get_char(p) < 0x7f || g_utf8_get_char(p) >= 0xa0;
  shown = g_strescape(shown_name, text ? high : NULL);
  g_set_error(error, SQLENVFS_ERROR, SQLENVFS_ERROR_INVALID,
              "database name '%s' is not supported: %s (any UTF-8 name of at most 200 bytes "
              "without '/', '[', ']' or control characters, not starting with '.')",
              shown, problem);
  return FALSE;
}

gboolean
sqlenvfs_db_name_check(const char *name, GError **error)
{
  const char *problem = sqlenvfs_db_name_problem(name);
  if (problem == NULL)
    return TRUE;
  /* One ".db" may be the file's, written for the database's name. */
  if (g_str_has_suffix(name, ".db")) {
    g_autofree char *stem = g_strndup(name, strlen(name) - 3);
    if (sqlenvfs_db_name_problem(stem) == NULL)
      return TRUE;
  }
  return name_error(name, problem, error);
}

/* Whether database @name is this root's: its production file is there,
 * or its archive is. */
static gboolean
db_is_known(const SqlenvfsRoot *root, const char *name)
{
  g_autofree char *prod = NULL, *wal = NULL;
  if (!sqlenvfs_db_name_is_valid(name))
    return FALSE;
  prod = sqlenvfs_root_prod_db(root, name);
  wal = g_build_filename(root->paths[SQLENVFS_DIR_WAL], name, NULL);
  return g_file_test(prod, G_FILE_TEST_IS_REGULAR) || g_file_test(wal, G_FILE_TEST_IS_DIR);
}

static char *
resolve_db(const SqlenvfsRoot *root, const char *name, gboolean must_exist, gboolean exact,
           GError **error)
{
  g_autofree char *path = NULL;
  g_autofree char *stem = NULL;

  if (name != NULL && *name == '\0') {
    /* A script's unset variable (--db "$DB"), not a choice of the default. */
    g_autofree char *dbs = sqlenvfs_root_describe_dbs(root, NULL);
    g_autofree char *has = dbs ? g_strdup_printf(" (this root has %s)", dbs) : g_strdup("");
    g_set_error(error, SQLENVFS_ERROR, SQLENVFS_ERROR_INVALID,
                "the database name is empty: name a database%s, or give none for the "
                "default (%s)", has, root->settings.default_db);
    return NULL;
  }
  /* The default is the operator's, never one put in place of a line with
   * an error. */
  if (name == NULL && !sqlenvfs_root_settings_need(root, "sqlenvfs", error)) {
    g_prefix_error(error, "no database named (give --db), and the default cannot be read: ");
    return NULL;
  }
  if (name == NULL)
    name = root->settings.default_db;
  /* The name as list prints it first: "y.db" is the database y.db (file
   * y.db.db) when there is one. Else one ".db" is taken for the file's,
   * when that names a database, and never more than one. */
  if (!exact && g_str_has_suffix(name, ".db") && !db_is_known(root, name)) {
    stem = g_strndup(name, strlen(name) - 3);
    if (db_is_known(root, stem))
      name = stem;
  }
  /* The name as resolved is a database's name (a ".db" it keeps is part
   * of it: a name that is supported only without it names no database
   * here). */
  if (!sqlenvfs_db_name_is_valid(name)) {
    name_error(name, sqlenvfs_db_name_problem(name), error);
    return NULL;
  }
  path = sqlenvfs_root_prod_db(root, name);
  if (must_exist && !g_file_test(path, G_FILE_TEST_IS_REGULAR)) {
    g_autofree char *root_word = sqlenvfs_shell_word(root->dir);
    g_autofree char *db_word = sqlenvfs_shell_word(name);
    g_autofree char *dbs = sqlenvfs_root_describe_dbs(root, NULL);
    const char *which = name == root->settings.default_db
                          ? " (the default database, taken as no name was given; [sqlenvfs] "
                            "default-db in sqlenvfs.conf sets it)"
                          : "";
    if (dbs != NULL)
      g_set_error(error, SQLENVFS_ERROR, SQLENVFS_ERROR_NOT_FOUND,
                  "production database %s does not exist%s; this root has %s: name one of "
                  "them instead", path, which, dbs);
    else
      g_set_error(error, SQLENVFS_ERROR, SQLENVFS_ERROR_NOT_FOUND,
                  "production database %s does not exist%s, nor does any other: create it "
                  "with `sqlenvfs init --root %s --db %s`", path, which, root_word, db_word);
    return NULL;
  }
  return g_strdup(name);
}

char *
sqlenvfs_root_resolve_db(const SqlenvfsRoot *root, const char *name,
                         gboolean must_exist, GError **error)
{
  return resolve_db(root, name, must_exist, FALSE, error);
}

char *
sqlenvfs_root_resolve_new_db(const SqlenvfsRoot *root, const char *name, GError **error)
{
  return resolve_db(root, name, FALSE, TRUE, error);
}

char *
sqlenvfs_root_describe_dbs(const SqlenvfsRoot *root, guint *n)
{
  g_autoptr(GPtrArray) names = sqlenvfs_root_list_dbs(root);
  GString *s;

  if (n != NULL)
    *n = names->len;
  if (names->len == 0)
    return NULL;
  s = g_string_new(NULL);
  for (guint i = 0; i < names->len; i++) {
    g_autofree char *word = sqlenvfs_shell_word(names->pdata[i]);
    if (i > 0)
      g_string_append(s, i + 1 == names->len ? " and " : ", ");
    g_string_append(s, word);
  }
  return g_string_free(s, FALSE);
}

char *
sqlenvfs_root_lock_path(const SqlenvfsRoot *root, const char *name)
{
  g_autofree char *file = g_strconcat(name, ".lock", NULL);
  return g_build_filename(root->paths[SQLENVFS_DIR_STATE], file, NULL);
}

int
sqlenvfs_root_lock(SqlenvfsRoot *root, const char *name, gboolean wait, GError **error)
{
  g_autofree char *path = sqlenvfs_root_lock_path(root, name);
  int fd;

  if (!sqlenvfs_root_refuse_links(root, SQLENVFS_DIR_STATE, "take a lock", error) ||
      !sqlenvfs_mkdir_p(root->paths[SQLENVFS_DIR_STATE], 0700, error))
    return -1;
  /* Its pid is written over it: never another name of production. */
  fd = sqlenvfs_open_own_file(path, O_RDWR, 0600, error);
  if (fd < 0) {
    g_prefix_error(error, "lock file: ");
    return -1;
  }
  while (flock(fd, LOCK_EX | (wait ? 0 : LOCK_NB)) != 0) {
    int errsv = errno;
    if (errsv == EINTR)
      continue;
    if (errsv == EWOULDBLOCK) {
      char buf[32] = { 0 };
      ssize_t n = pread(fd, buf, sizeof buf - 1, 0);
      g_strstrip(buf);
      g_set_error(error, SQLENVFS_ERROR, SQLENVFS_ERROR_BUSY,
                  "lock %s: already held by process %s (one %s per root; stop the other "
                  "one, or use the running daemon's mount)",
                  path, n > 0 ? buf : "?", name);
    } else {
      sqlenvfs_error_errno(error, errsv, "lock", path);
    }
    close(fd);
    return -1;
  }
  sqlenvfs_root_lock_set_pid(fd);
  return fd;
}

gboolean
sqlenvfs_root_lock_set_pid(int fd)
{
  char buf[32];
  int len = g_snprintf(buf, sizeof buf, "%d\n", (int)getpid());
  return ftruncate(fd, 0) == 0 && pwrite(fd, buf, (size_t)len, 0) == len;
}

void
sqlenvfs_root_unlock(int fd)
{
  if (fd >= 0) {
    flock(fd, LOCK_UN);
    close(fd);
  }
}

static char *
real_dir_of(const char *path)
{
  g_autofree char *dir = g_path_get_dirname(path);
  char *r = realpath(dir, NULL);
  char *out = r ? g_strdup(r) : NULL;
  free(r);
  return out;
}

gboolean
sqlenvfs_root_is_db_name(const char *base)
{
  if (g_str_has_suffix(base, ".db"))
    return TRUE;
  for (gsize i = 0; i < SQLENVFS_N_DB_SIDECARS; i++) {
    g_autofree char *end = g_strconcat(".db", SQLENVFS_DB_SIDECARS[i], NULL);
    if (g_str_has_suffix(base, end))
      return TRUE;
  }
  return FALSE;
}

/* The directories of a root only sqlenvfs writes in, by name. */
static const char *const store_rel[] = { "backups", ".cache", ".sqlenvfs" };

char *
sqlenvfs_root_store_area_of(const char *path)
{
  g_autofree char *dir = real_dir_of(path);
  /* Each directory from @path's up: one of those names beside a data/prod
   * directory is a root's (whichever root, given or not). */
  while (dir != NULL && strcmp(dir, "/") != 0) {
    g_autofree char *name = g_path_get_basename(dir);
    g_autofree char *parent = g_path_get_dirname(dir);
    for (gsize i = 0; i < G_N_ELEMENTS(store_rel); i++) {
      g_autofree char *prod = g_build_filename(parent, "data", "prod", NULL);
      if (strcmp(name, store_rel[i]) == 0 && g_file_test(prod, G_FILE_TEST_IS_DIR))
        return g_steal_pointer(&dir);
    }
    g_free(dir);
    dir = g_steal_pointer(&parent);
  }
  return NULL;
}

char *
sqlenvfs_root_env_dir_of(const char *path)
{
  g_autofree char *dir = real_dir_of(path);
  g_autofree char *base = g_path_get_basename(path);
  g_autofree char *env = dir ? g_path_get_basename(dir) : NULL;
  g_autofree char *data = dir ? g_path_get_dirname(dir) : NULL;
  g_autofree char *data_name = data ? g_path_get_basename(data) : NULL;
  g_autofree char *prod = data ? g_build_filename(data, "prod", NULL) : NULL;

  if (dir == NULL || !sqlenvfs_root_is_db_name(base) || g_strcmp0(data_name, "data") != 0 ||
      (strcmp(env, "prod") != 0 && strcmp(env, "dev") != 0) ||
      !g_file_test(prod, G_FILE_TEST_IS_DIR))
    return NULL;
  return g_steal_pointer(&dir);
}

char *
sqlenvfs_root_store_dir_holding(const SqlenvfsRoot *root, const char *path)
{
  g_autofree char *dir = real_dir_of(path);
  struct stat areas[G_N_ELEMENTS(store_rel)];
  gboolean found[G_N_ELEMENTS(store_rel)];
  for (gsize i = 0; i < G_N_ELEMENTS(store_rel); i++) {
    g_autofree char *area = g_build_filename(root->dir, store_rel[i], NULL);
    found[i] = stat(area, &areas[i]) == 0;
  }
  /* Each directory from @path's up, by device and inode: the same
   * directory reached another way (a bind mount) has no name to tell. */
  while (dir != NULL) {
    g_autofree char *parent = NULL;
    struct stat st;
    if (stat(dir, &st) == 0)
      for (gsize i = 0; i < G_N_ELEMENTS(store_rel); i++)
        if (found[i] && st.st_dev == areas[i].st_dev && st.st_ino == areas[i].st_ino)
          return g_build_filename(root->dir, store_rel[i], NULL);
    if (strcmp(dir, "/") == 0)
      break;
    parent = g_path_get_dirname(dir);
    g_free(dir);
    dir = g_steal_pointer(&parent);
  }
  return NULL;
}

gboolean
sqlenvfs_root_is_db_file(const SqlenvfsRoot *root, const char *path, char **which)
{
  g_autoptr(GPtrArray) names = sqlenvfs_root_list_dbs(root);
  g_autofree char *dir = real_dir_of(path);
  g_autofree char *base = g_path_get_basename(path);
  struct stat st;
  gboolean exists = stat(path, &st) == 0;

  *which = NULL;
  for (int k = 0; k < 2 && dir != NULL && sqlenvfs_root_is_db_name(base); k++) {
    g_autofree char *env_dir =
      realpath(root->paths[k == 0 ? SQLENVFS_DIR_PROD : SQLENVFS_DIR_DEV], NULL);
    if (env_dir != NULL && strcmp(env_dir, dir) == 0) {
      *which = g_build_filename(root->paths[k == 0 ? SQLENVFS_DIR_PROD : SQLENVFS_DIR_DEV],
                                base, NULL);
      return TRUE;
    }
  }
  for (guint i = 0; exists && i < names->len; i++) {
    char *paths[2] = { sqlenvfs_root_prod_db(root, names->pdata[i]),
                       sqlenvfs_root_dev_db(root, names->pdata[i]) };
    for (int k = 0; k < 2; k++) {
      /* The database, then the files SQLite keeps beside it (its -wal
       * holds commits that the database file does not). */
      for (gsize j = 0; *which == NULL && j < SQLENVFS_N_DB_FILES; j++) {
        g_autofree char *p = g_strconcat(paths[k], sqlenvfs_db_files[j], NULL);
        struct stat dst;
        if (stat(p, &dst) == 0 && dst.st_dev == st.st_dev && dst.st_ino == st.st_ino)
          *which = g_steal_pointer(&p);
      }
    }
    g_free(paths[0]);
    g_free(paths[1]);
    if (*which != NULL)
      return TRUE;
  }
  return FALSE;
}
