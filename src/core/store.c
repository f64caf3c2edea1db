/*
 * store.c — backups and snapshots on disk (store.h; format: docs/STORE.md).
 *
 * Layout of one entry (one run of `backup` or `snapshot`):
 *
 *   backups/prod/{daily,snapshots}/<name>/       name: 20261128T161400Z or
 *     MANIFEST                                         20261128T161400.250Z
 *     <db>.db  ...                                     (UTC, ISO 8601 basic)
 *
 *   MANIFEST (GKeyFile, format 2; format 1 is the same without checksum):
 *     [sqlenvfs-copy] format kind name created created-us finished-us
 *                     sqlenvfs-version sqlite-version databases checksum
 *     [db <name>]     file size crc32 page-size page-count journal-mode
 *                     wal-salt1 wal-salt2 wal-frame wal-cksum1 wal-cksum2
 *                     wal-ckpt-seq pinned-at pinned-at-us
 *                     [archive-before archive-after [archive-before-crc]]
 *                                                     (WAL frame 0 only)
 *
 * Life of an entry (function in brackets):
 *
 *   (nothing) -> ".tmp-<name>-<pid>/" created            [sqlenvfs_store_create]
 *             -> each <db>.db copied in, checked, fsync'd  [sqlenvfs_copy_db]
 *             -> MANIFEST written and fsync'd
 *             -> renamed to "<name>/", parent fsync'd   => COMPLETE
 *   COMPLETE  -> renamed to ".tmp-del-<name>-<pid>/"     [sqlenvfs_store_prune]
 *             -> deleted
 *   ".tmp-*" of a process that no longer runs -> deleted [sqlenvfs_copy_cleanup_tmp]
 *
 * Invariants:
 *   (1) A directory whose name parses as a time and which holds a MANIFEST
 *       is complete: it only ever gets that name by a rename after every
 *       copy in it passed integrity_check and was fsync'd, and loses it by
 *       a rename before anything in it is deleted.
 *   (2) Names are unique within a kind; a name that is taken gets a
 *       millisecond fraction later than every entry of the same second.
 *   (3) The WAL position stored for each database is exactly the one of
 *       the state copied (liveview.h), every field, so that the archive can
 *       roll the copy forward.
 *   (4) Creating and pruning hold the per-root "store" lock, so they never
 *       run at the same time in two processes.
 *   (5) A MANIFEST is believed only if its checksum matches (format 2): the
 *       crc32 of "[group]\nkey=value\n" for every key but the checksum
 *       itself, groups and keys in file order, values as stored.
 *   (6) A base is used only after check_base() found its file to be what
 *       the MANIFEST says; the verdict is remembered for the file's identity
 *       (dev, inode, size, mtime, ctime) and those MANIFEST values, never
 *       longer than they stay the same.
 *   (7) A MANIFEST is believed for its own entry only: its name and kind
 *       are its directory's, and that name dates the run its created-us
 *       says. An entry that is a symbolic link, or whose database file is
 *       one, is never read as a copy (load_entry).
 */
#include "sqlenvfs/store.h"
#include "config.h"
#include "sqlenvfs/archive.h"
#include "sqlenvfs/copy.h"
#include "sqlenvfs/error.h"
#include "sqlenvfs/testhooks.h"
#include "sqlenvfs/timefmt.h"
#include "sqlenvfs/util.h"
#include "sqlenvfs/verifymemo.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define MANIFEST "MANIFEST"
#define MANIFEST_FORMAT 2        /* what this version writes                 */
#define MANIFEST_FORMAT_OLDEST 1 /* the oldest it reads (no checksum)         */
#define KEY_CHECKSUM "checksum"
#define GROUP_COPY "sqlenvfs-copy"
#define DB_GROUP_PREFIX "db "

/* -------------------------------------------------------------- entries */

static void
stored_db_free(gpointer p)
{
  SqlenvfsStoredDb *sdb = p;
  if (sdb == NULL)
    return;
  g_free(sdb->db);
  g_free(sdb->path);
  g_free(sdb->journal_mode);
  g_free(sdb);
}

void
sqlenvfs_stored_copy_free(SqlenvfsStoredCopy *copy)
{
  if (copy == NULL)
    return;
  g_free(copy->name);
  g_free(copy->dir);
  if (copy->dbs)
    g_ptr_array_unref(copy->dbs);
  if (copy->skipped)
    g_ptr_array_unref(copy->skipped);
  g_free(copy);
}

const char *
sqlenvfs_copy_kind_name(SqlenvfsCopyKind kind)
{
  return kind == SQLENVFS_KIND_SNAPSHOT ? "snapshot" : "backup";
}

const char *
sqlenvfs_store_dir(SqlenvfsRoot *root, SqlenvfsCopyKind kind)
{
  return sqlenvfs_root_path(root, kind == SQLENVFS_KIND_SNAPSHOT ? SQLENVFS_DIR_SNAPSHOTS
                                                                 : SQLENVFS_DIR_DAILY);
}

const SqlenvfsStoredDb *
sqlenvfs_stored_copy_find(const SqlenvfsStoredCopy *copy, const char *db)
{
  for (guint i = 0; i < copy->dbs->len; i++) {
    const SqlenvfsStoredDb *sdb = copy->dbs->pdata[i];
    if (g_str_equal(sdb->db, db))
      return sdb;
  }
  return NULL;
}

static gint
cmp_stored_db(gconstpointer a, gconstpointer b)
{
  const SqlenvfsStoredDb *x = *(SqlenvfsStoredDb *const *)a;
  const SqlenvfsStoredDb *y = *(SqlenvfsStoredDb *const *)b;
  return strcmp(x->db, y->db);
}

static gint
cmp_copy(gconstpointer a, gconstpointer b)
{
  const SqlenvfsStoredCopy *x = *(SqlenvfsStoredCopy *const *)a;
  const SqlenvfsStoredCopy *y = *(SqlenvfsStoredCopy *const *)b;
  return sqlenvfs_time_name_cmp(&x->name, &y->name);
}

/* ------------------------------------------------------------- MANIFEST */

static gboolean
get_u64(GKeyFile *kf, const char *group, const char *key, guint64 max, guint64 *out,
        const char *file, GError **error)
{
  g_autofree char *raw = g_key_file_get_value(kf, group, key, NULL);
  char *end = NULL;
  guint64 v;
  int base = 10;
  const char *p = raw;

  if (raw == NULL) {
    g_set_error(error, SQLENVFS_ERROR, SQLENVFS_ERROR_INTEGRITY,
                "read %s: [%s] has no %s (the MANIFEST is damaged)", file, group, key);
    return FALSE;
  }
  if (g_str_has_prefix(p, "0x")) {
    base = 16;
    p += 2;
  }
  errno = 0;
  v = g_ascii_strtoull(p, &end, base);
  if (*p == '\0' || *p == '-' || end == NULL || *end != '\0' || errno != 0 || v > max) {
    g_set_error(error, SQLENVFS_ERROR, SQLENVFS_ERROR_INTEGRITY,
                "read %s: [%s] %s=%s is not a valid number (the MANIFEST is damaged)", file,
                group, key, raw);
    return FALSE;
  }
  *out = v;
  return TRUE;
}

static gboolean
get_u32(GKeyFile *kf, const char *group, const char *key, guint32 *out, const char *file,
        GError **error)
{
  guint64 v;
  if (!get_u64(kf, group, key, G_MAXUINT32, &v, file, error))
    return FALSE;
  *out = (guint32)v;
  return TRUE;
}

/* The crc32 of every key and value of @kf but the checksum itself
 * (invariant 5). */
static guint32
manifest_checksum(GKeyFile *kf)
{
  g_auto(GStrv) groups = g_key_file_get_groups(kf, NULL);
  guint32 c = 0;

  for (char **g = groups; *g; g++) {
    g_auto(GStrv) keys = g_key_file_get_keys(kf, *g, NULL, NULL);
    g_autofree char *head = g_strdup_printf("[%s]\n", *g);
    c = sqlenvfs_crc32(c, head, strlen(head));
    for (char **k = keys; keys && *k; k++) {
      g_autofree char *value = NULL;
      g_autofree char *line = NULL;
      if (g_str_equal(*g, GROUP_COPY) && g_str_equal(*k, KEY_CHECKSUM))
        continue;
      value = g_key_file_get_value(kf, *g, *k, NULL);
      line = g_strdup_printf("%s=%s\n", *k, value ? value : "");
      c = sqlenvfs_crc32(c, line, strlen(line));
    }
  }
  return c;
}

guint32
sqlenvfs_store_manifest_seal(GKeyFile *kf)
{
  guint32 sum;
  g_autofree char *text = NULL;

  g_return_val_if_fail(kf != NULL, 0);
  /* The key first, so that a MANIFEST without the group gets it before the
   * sum is taken: the sum covers the group's header line. */
  g_key_file_set_string(kf, GROUP_COPY, KEY_CHECKSUM, "0x00000000");
  sum = manifest_checksum(kf);
  text = g_strdup_printf("0x%08x", sum);
  g_key_file_set_string(kf, GROUP_COPY, KEY_CHECKSUM, text);
  return sum;
}

/* Longest quote of a MANIFEST's text in a message, in columns. */
#define QUOTE_MAX 80

/* @text, which may quote a damaged MANIFEST's bytes, as one printable
 * line: bytes that are not UTF-8 as U+FFFD, control characters (C0, DEL,
 * C1) as \xNN, and a line GLib quotes (“...”) cut with "..." once it
 * would take more than QUOTE_MAX columns (U+FFFD and \xNN as printed). */
static char *
printable_line(const char *text)
{
  g_autofree char *valid = g_utf8_make_valid(text, -1);
  GString *out = g_string_new(NULL);
  glong width = 0; /* columns printed since the last opening quote */
  gboolean quoted = FALSE, cut = FALSE;

  for (const char *p = valid; *p; p = g_utf8_next_char(p)) {
    gunichar c = g_utf8_get_char(p);
    gboolean control = c < 0x20 || (c >= 0x7f && c < 0xa0);
    if (c == 0x201c || c == 0x201d) { /* GLib quotes a line as “...” */
      quoted = c == 0x201c;
      width = 0;
      cut = FALSE;
    } else if (quoted && (width += control ? 4 : 1) > QUOTE_MAX) {
      if (!cut)
        g_string_append(out, "...");
      cut = TRUE;
      continue;
    }
    if (control)
      g_string_append_printf(out, "\\x%02x", c);
    else
      g_string_append_unichar(out, c);
  }
  return g_string_free(out, FALSE);
}

/* Whether an entry named for @name_us can have been made at @created_us:
 * a run is named for its start (sqlenvfs_time_format_name), to the second
 * in format 1 and to the millisecond since, a taken millisecond moved on
 * within its second (unique_name); a second more is allowed for a
 * thousand runs in one second. */
static gboolean
name_fits_created(gint64 name_us, gint64 created_us)
{
  gint64 second = created_us - (created_us % G_USEC_PER_SEC + G_USEC_PER_SEC) % G_USEC_PER_SEC;
  return name_us >= second && name_us < second + 2 * G_USEC_PER_SEC;
}

/* Load the entry @name of @kind. A MANIFEST is believed for its own
 * directory only: it names the entry it was written for, and an entry
 * renamed to another time, swapped with another, or a symbolic link to
 * another, would otherwise be that time's copy to every reader (list, the
 * mount, a restore). So a MANIFEST whose name, kind or creation time is
 * not its directory's, an entry that is a symbolic link, and a database
 * file that is one, make the entry unreadable (INTEGRITY); *bad_file (may
 * be NULL) then receives the path found bad when it is not the MANIFEST
 * (newly allocated). A missing database file is not an error here: its
 * readers say so. NOT_FOUND when there is no such entry. */
static SqlenvfsStoredCopy *
load_entry(SqlenvfsRoot *root, SqlenvfsCopyKind kind, const char *name, char **bad_file,
           GError **error)
{
  g_autoptr(SqlenvfsStoredCopy) copy = g_new0(SqlenvfsStoredCopy, 1);
  g_autoptr(GKeyFile) kf = g_key_file_new();
  g_autoptr(GError) local = NULL;
  g_autofree char *file = NULL, *stated_name = NULL, *stated_kind = NULL;
  g_auto(GStrv) names = NULL;
  guint64 format = 0;
  struct stat st;

  copy->kind = kind;
  copy->name = g_strdup(name);
  copy->dir = g_build_filename(sqlenvfs_store_dir(root, kind), name, NULL);
  copy->dbs = g_ptr_array_new_with_free_func(stored_db_free);
  if (!sqlenvfs_time_parse_name(name, &copy->time)) {
    g_set_error(error, SQLENVFS_ERROR, SQLENVFS_ERROR_NOT_FOUND,
                "%s %s: not a %s name (names look like 20261128T161400Z; see `sqlenvfs list`)",
                sqlenvfs_copy_kind_name(kind), name, sqlenvfs_copy_kind_name(kind));
    return NULL;
  }
  if (lstat(copy->dir, &st) == 0 && S_ISLNK(st.st_mode)) {
    g_autofree char *target = g_file_read_link(copy->dir, NULL);
    g_autofree char *word = sqlenvfs_shell_word(copy->dir);
    g_autofree char *target_word = sqlenvfs_shell_word(target ? target : "TARGET");
    if (bad_file != NULL)
      *bad_file = g_strdup(copy->dir);
    g_set_error(error, SQLENVFS_ERROR, SQLENVFS_ERROR_INTEGRITY,
                "%s is a symbolic link (to %s), not a %s: a copy is never read through a link, "
                "which could lead to another time's state (if it leads to this copy, moved "
                "elsewhere, move it back: `rm %s; mv %s %s`; to keep copies on another disk, "
                "mount it on backups/ instead)",
                copy->dir, target ? target : "?", sqlenvfs_copy_kind_name(kind), word,
                target_word, word);
    return NULL;
  }
  if (!g_file_test(copy->dir, G_FILE_TEST_IS_DIR)) {
    g_set_error(error, SQLENVFS_ERROR, SQLENVFS_ERROR_NOT_FOUND,
                "%s %s: no such %s in %s (see `sqlenvfs list`)", sqlenvfs_copy_kind_name(kind),
                name, sqlenvfs_copy_kind_name(kind), sqlenvfs_store_dir(root, kind));
    return NULL;
  }
  file = g_build_filename(copy->dir, MANIFEST, NULL);
  if (lstat(file, &st) == 0 && S_ISLNK(st.st_mode)) {
    /* Never followed, nor its target's text quoted (it may be anything). */
    if (bad_file != NULL)
      *bad_file = g_strdup(file);
    g_set_error(error, SQLENVFS_ERROR, SQLENVFS_ERROR_INTEGRITY,
                "read %s: it is a symbolic link, not the %s's MANIFEST (the MANIFEST is "
                "damaged)", file, sqlenvfs_copy_kind_name(kind));
    return NULL;
  }
  if (!g_key_file_load_from_file(kf, file, G_KEY_FILE_NONE, &local) &&
      g_error_matches(local, G_FILE_ERROR, G_FILE_ERROR_ACCES)) {
    /* Not damage: another user's file (one written by root, say). */
    g_autofree char *owner = sqlenvfs_error_owner_hint(file);
    g_set_error(error, SQLENVFS_ERROR, SQLENVFS_ERROR_PERMISSION,
                "read %s: this user may not read it, which says nothing of the %s's state%s",
                file, sqlenvfs_copy_kind_name(kind),
                owner ? owner : " (check ownership and permissions of that path)");
    return NULL;
  }
  if (local != NULL) {
    /* GKeyFile's parse errors quote the line: what the file holds is not
     * repeated (status is readable by others under -o allow_other). */
    g_autofree char *why = local->domain == G_KEY_FILE_ERROR
                             ? g_strdup("it does not parse as a MANIFEST (a line that is not a "
                                        "group, a key or a comment, or text that is not UTF-8)")
                             : printable_line(local->message);
    g_set_error(error, SQLENVFS_ERROR, SQLENVFS_ERROR_INTEGRITY, "read %s: %s", file,
                g_error_matches(local, G_FILE_ERROR, G_FILE_ERROR_NOENT) ? "no such file" : why);
    return NULL;
  }
  if (!get_u64(kf, GROUP_COPY, "format", G_MAXUINT32, &format, file, error))
    return NULL;
  if (format < MANIFEST_FORMAT_OLDEST || format > MANIFEST_FORMAT) {
    g_set_error(error, SQLENVFS_ERROR, SQLENVFS_ERROR_INTEGRITY,
                "read %s: format %" G_GUINT64_FORMAT " is not one this version reads (%d to %d; "
                "use a newer sqlenvfs)",
                file, format, MANIFEST_FORMAT_OLDEST, MANIFEST_FORMAT);
    return NULL;
  }
  /* Format 1 never carried a checksum: one that does is a later MANIFEST
   * whose format was changed, and its checksum is checked all the same. */
  if (format >= 2 || g_key_file_has_key(kf, GROUP_COPY, KEY_CHECKSUM, NULL)) {
    guint32 stored = 0, actual = manifest_checksum(kf);
    if (!get_u32(kf, GROUP_COPY, KEY_CHECKSUM, &stored, file, error))
      return NULL;
    if (stored != actual) {
      g_set_error(error, SQLENVFS_ERROR, SQLENVFS_ERROR_INTEGRITY,
                  "read %s: its checksum is 0x%08x but its contents give 0x%08x (the MANIFEST "
                  "was changed or damaged after it was written; this %s is not used as a base; "
                  "take a new one with `sqlenvfs %s`)",
                  file, stored, actual, sqlenvfs_copy_kind_name(kind),
                  sqlenvfs_copy_kind_name(kind));
      return NULL;
    }
    copy->is_protected = TRUE;
  }
  copy->created_us = g_key_file_get_int64(kf, GROUP_COPY, "created-us", NULL);
  /* Every MANIFEST written names its entry (format 1 too); one that does
   * not is placed by its creation time alone. */
  stated_name = g_key_file_get_string(kf, GROUP_COPY, "name", NULL);
  stated_kind = g_key_file_get_string(kf, GROUP_COPY, "kind", NULL);
  if (stated_name != NULL && strcmp(stated_name, name) != 0) {
    g_autofree char *shown = printable_line(stated_name);
    g_set_error(error, SQLENVFS_ERROR, SQLENVFS_ERROR_INTEGRITY,
                "read %s: it was written for the %s named %s, not %s: the directory was "
                "renamed, or swapped with another, by hand, and does not hold the state of the "
                "time its name says (rename it back to %s, or remove it)",
                file, sqlenvfs_copy_kind_name(kind), shown, name, shown);
    return NULL;
  }
  if (stated_kind != NULL && strcmp(stated_kind, sqlenvfs_copy_kind_name(kind)) != 0) {
    g_autofree char *shown = printable_line(stated_kind);
    g_set_error(error, SQLENVFS_ERROR, SQLENVFS_ERROR_INTEGRITY,
                "read %s: it was written for a %s, not a %s: it was moved between %s and "
                "another store directory by hand (move it back, or remove it)",
                file, shown, sqlenvfs_copy_kind_name(kind), sqlenvfs_store_dir(root, kind));
    return NULL;
  }
  if (copy->created_us > 0 && !name_fits_created(copy->time, copy->created_us)) {
    g_autofree char *made = sqlenvfs_time_format_iso(copy->created_us);
    g_set_error(error, SQLENVFS_ERROR, SQLENVFS_ERROR_INTEGRITY,
                "read %s: it was made at %s, which its directory's name %s does not say: the "
                "directory was renamed or copied by hand (rename it back to that time, or "
                "remove it)",
                file, made, name);
    return NULL;
  }
  names = g_key_file_get_string_list(kf, GROUP_COPY, "databases", NULL, NULL);
  if (names == NULL || names[0] == NULL) {
    g_set_error(error, SQLENVFS_ERROR, SQLENVFS_ERROR_INTEGRITY,
                "read %s: it lists no databases (the MANIFEST is damaged)", file);
    return NULL;
  }
  for (char **n = names; *n; n++) {
    g_autofree char *group = g_strconcat(DB_GROUP_PREFIX, *n, NULL);
    g_autofree char *dbfile = g_strconcat(*n, ".db", NULL);
    SqlenvfsStoredDb *sdb;
    guint64 pinned = 0;

    if (!sqlenvfs_db_name_is_valid(*n) || !g_key_file_has_group(kf, group)) {
      g_set_error(error, SQLENVFS_ERROR, SQLENVFS_ERROR_INTEGRITY,
                  "read %s: database '%s' has no valid [%s] group (the MANIFEST is damaged)",
                  file, *n, group);
      return NULL;
    }
    for (char **m = names; m < n; m++) {
      if (g_str_equal(*m, *n)) {
        g_set_error(error, SQLENVFS_ERROR, SQLENVFS_ERROR_INTEGRITY,
                    "read %s: database '%s' is listed twice (the MANIFEST is damaged)", file,
                    *n);
        return NULL;
      }
    }
    sdb = g_new0(SqlenvfsStoredDb, 1);
    g_ptr_array_add(copy->dbs, sdb);
    sdb->db = g_strdup(*n);
    sdb->path = g_build_filename(copy->dir, dbfile, NULL);
    if (lstat(sdb->path, &st) == 0 && !S_ISREG(st.st_mode)) {
      if (bad_file != NULL)
        *bad_file = g_strdup(sdb->path);
      g_set_error(error, SQLENVFS_ERROR, SQLENVFS_ERROR_INTEGRITY,
                  "%s is %s, not a copy of a database%s (remove this %s, and take a new one "
                  "with `sqlenvfs %s`)",
                  sdb->path, S_ISLNK(st.st_mode) ? "a symbolic link" : "not a regular file",
                  S_ISLNK(st.st_mode)
                    ? ": a copy is never read through a link, whose target holds another state"
                    : "",
                  sqlenvfs_copy_kind_name(kind), sqlenvfs_copy_kind_name(kind));
      return NULL;
    }
    sdb->journal_mode = g_key_file_get_string(kf, group, "journal-mode", NULL);
    if (!get_u64(kf, group, "size", G_MAXINT64, &sdb->size, file, error) ||
        !get_u32(kf, group, "crc32", &sdb->crc32, file, error) ||
        !get_u32(kf, group, "page-size", &sdb->pos.page_size, file, error) ||
        !get_u32(kf, group, "page-count", &sdb->pos.n_pages, file, error) ||
        !get_u32(kf, group, "wal-salt1", &sdb->pos.salt1, file, error) ||
        !get_u32(kf, group, "wal-salt2", &sdb->pos.salt2, file, error) ||
        !get_u32(kf, group, "wal-frame", &sdb->pos.frame, file, error) ||
        !get_u32(kf, group, "wal-cksum1", &sdb->pos.cksum1, file, error) ||
        !get_u32(kf, group, "wal-cksum2", &sdb->pos.cksum2, file, error) ||
        !get_u32(kf, group, "wal-ckpt-seq", &sdb->pos.ckpt_seq, file, error) ||
        !get_u64(kf, group, "pinned-at-us", G_MAXINT64, &pinned, file, error) ||
        (g_key_file_has_key(kf, group, "archive-before", NULL) &&
         !get_u64(kf, group, "archive-before", G_MAXINT64, &sdb->archive_before, file,
                  error)) ||
        (g_key_file_has_key(kf, group, "archive-after", NULL) &&
         !get_u64(kf, group, "archive-after", G_MAXINT64, &sdb->archive_after, file, error)) ||
        (g_key_file_has_key(kf, group, "archive-before-crc", NULL) &&
         !get_u32(kf, group, "archive-before-crc", &sdb->archive_before_crc, file, error)))
      return NULL;
    sdb->has_archive_before_crc = g_key_file_has_key(kf, group, "archive-before-crc", NULL);
    if (sdb->has_archive_before_crc && sdb->archive_before < 2) {
      g_set_error(error, SQLENVFS_ERROR, SQLENVFS_ERROR_INTEGRITY,
                  "read %s: [%s] has archive-before-crc without an archive-before of 2 or more "
                  "to say which record it is of (the MANIFEST is damaged; this copy is not "
                  "used as a base: take a new one)",
                  file, group);
      return NULL;
    }
    sdb->pos.pinned_at = (gint64)pinned;
  }
  g_ptr_array_sort(copy->dbs, cmp_stored_db);
  return g_steal_pointer(&copy);
}

static gboolean
write_manifest(const char *dir, SqlenvfsCopyKind kind, const char *name, gint64 created,
               GPtrArray *dbs, int mode, GError **error)
{
  g_autoptr(GKeyFile) kf = g_key_file_new();
  g_autofree char *file = g_build_filename(dir, MANIFEST, NULL);
  g_autofree char *created_iso = sqlenvfs_time_format_iso(created);
  g_autofree char *data = NULL;
  g_autofree const char **names = g_new0(const char *, dbs->len + 1);
  gsize len = 0;

  g_key_file_set_comment(kf, NULL, NULL,
                         " sqlenvfs backup/snapshot manifest; format: docs/STORE.md", NULL);
  g_key_file_set_integer(kf, GROUP_COPY, "format", MANIFEST_FORMAT);
  g_key_file_set_string(kf, GROUP_COPY, "kind", sqlenvfs_copy_kind_name(kind));
  g_key_file_set_string(kf, GROUP_COPY, "name", name);
  g_key_file_set_string(kf, GROUP_COPY, "created", created_iso);
  g_key_file_set_int64(kf, GROUP_COPY, "created-us", created);
  g_key_file_set_int64(kf, GROUP_COPY, "finished-us", sqlenvfs_clock_now());
  g_key_file_set_string(kf, GROUP_COPY, "sqlenvfs-version", SQLENVFS_VERSION);
  g_key_file_set_string(kf, GROUP_COPY, "sqlite-version", sqlite3_libversion());
  for (guint i = 0; i < dbs->len; i++)
    names[i] = ((SqlenvfsStoredDb *)dbs->pdata[i])->db;
  g_key_file_set_string_list(kf, GROUP_COPY, "databases", names, dbs->len);

  for (guint i = 0; i < dbs->len; i++) {
    const SqlenvfsStoredDb *sdb = dbs->pdata[i];
    g_autofree char *group = g_strconcat(DB_GROUP_PREFIX, sdb->db, NULL);
    g_autofree char *dbfile = g_strconcat(sdb->db, ".db", NULL);
    g_autofree char *crc = g_strdup_printf("0x%08x", sdb->crc32);
    g_autofree char *pinned = sqlenvfs_time_format_iso(sdb->pos.pinned_at);
    g_key_file_set_string(kf, group, "file", dbfile);
    g_key_file_set_uint64(kf, group, "size", sdb->size);
    g_key_file_set_string(kf, group, "crc32", crc);
    g_key_file_set_uint64(kf, group, "page-size", sdb->pos.page_size);
    g_key_file_set_uint64(kf, group, "page-count", sdb->pos.n_pages);
    g_key_file_set_string(kf, group, "journal-mode", sdb->journal_mode ? sdb->journal_mode : "");
    g_key_file_set_uint64(kf, group, "wal-salt1", sdb->pos.salt1);
    g_key_file_set_uint64(kf, group, "wal-salt2", sdb->pos.salt2);
    g_key_file_set_uint64(kf, group, "wal-frame", sdb->pos.frame);
    g_key_file_set_uint64(kf, group, "wal-cksum1", sdb->pos.cksum1);
    g_key_file_set_uint64(kf, group, "wal-cksum2", sdb->pos.cksum2);
    g_key_file_set_uint64(kf, group, "wal-ckpt-seq", sdb->pos.ckpt_seq);
    g_key_file_set_string(kf, group, "pinned-at", pinned);
    g_key_file_set_int64(kf, group, "pinned-at-us", sdb->pos.pinned_at);
    if (sdb->archive_before != 0)
      g_key_file_set_uint64(kf, group, "archive-before", sdb->archive_before);
    if (sdb->archive_after != 0)
      g_key_file_set_uint64(kf, group, "archive-after", sdb->archive_after);
    if (sdb->has_archive_before_crc) {
      g_autofree char *before_crc = g_strdup_printf("0x%08x", sdb->archive_before_crc);
      g_key_file_set_string(kf, group, "archive-before-crc", before_crc);
    }
  }
  sqlenvfs_store_manifest_seal(kf);
  data = g_key_file_to_data(kf, &len, NULL);
  return sqlenvfs_write_file_atomic(file, data, len, mode, error);
}

/* --------------------------------------------------------------- create */

typedef struct {
  SqlenvfsProgressFunc progress;
  gpointer user;
  int delay_ms;
} CreateProgress;

static void
create_progress(gpointer user, guint64 done, guint64 total)
{
  CreateProgress *cp = user;
  if (cp->progress)
    cp->progress(cp->user, done, total);
  if (cp->delay_ms > 0)
    g_usleep((gulong)cp->delay_ms * 1000);
}

/* A name for an entry made at @now that no entry of @dir has (invariant 2).
 * Every new name carries milliseconds ("20261128T161400.000Z"), so that byte
 * order is time order among them (`ls | tail -1` is the newest); a run whose
 * millisecond is taken gets the first free millisecond after every entry of
 * the same second. */
static char *
unique_name(const char *dir, gint64 now)
{
  gint64 second = now - (now % G_USEC_PER_SEC + G_USEC_PER_SEC) % G_USEC_PER_SEC;
  gint64 t = now - (now % 1000 + 1000) % 1000;
  g_autoptr(GDir) d = g_dir_open(dir, 0, NULL);
  const char *ent;

  /* Later than every entry of that second, whatever its form (an entry
   * named without a fraction stands for the second's first millisecond). */
  while (d && (ent = g_dir_read_name(d)) != NULL) {
    gint64 us;
    if (sqlenvfs_time_parse_name(ent, &us) && us >= second && us < second + G_USEC_PER_SEC)
      t = MAX(t, us - us % 1000 + 1000);
  }
  for (;;) {
    char *name = sqlenvfs_time_format_name(t, TRUE);
    g_autofree char *p = g_build_filename(dir, name, NULL);
    if (!g_file_test(p, G_FILE_TEST_EXISTS))
      return name;
    g_free(name);
    t += 1000;
  }
}

/* Check that a production database is in WAL mode: by its header when
 * that says it is not (it is then not opened at all), else opened
 * read-only; *bytes: the size of its committed state (page_count x
 * page_size), or its file's size when SQLite cannot say. */
static gboolean
check_source(const char *path, guint64 *bytes, GError **error)
{
  g_autoptr(sqlite3) db = NULL;
  g_autofree char *mode = NULL;
  gint64 n = 0, size = 0;
  struct stat st;

  if (g_strcmp0(sqlenvfs_db_file_journal(path), "delete") == 0) {
    mode = g_strdup("delete");
  } else {
    db = sqlenvfs_db_open(path, SQLENVFS_OPEN_READONLY | SQLENVFS_OPEN_MUST_EXIST, error);
    if (db == NULL || !sqlenvfs_db_query_text(db, "PRAGMA journal_mode", &mode, path, error))
      return FALSE;
  }
  if (db != NULL && sqlenvfs_db_query_int(db, "PRAGMA page_count", &n, path, NULL) &&
      sqlenvfs_db_query_int(db, "PRAGMA page_size", &size, path, NULL) && n > 0 && size > 0)
    *bytes = (guint64)n * (guint64)size;
  else
    *bytes = stat(path, &st) == 0 ? (guint64)st.st_size : 0;
  if (g_strcmp0(mode, "wal") != 0) {
    g_set_error(error, SQLENVFS_ERROR, SQLENVFS_ERROR_INVALID,
                "production database %s is in journal mode '%s', not WAL: backups, snapshots "
                "and WAL archiving need WAL mode (switch it with: sqlite3 %s "
                "'PRAGMA journal_mode=WAL', then retry)",
                path, mode ? mode : "?", path);
    return FALSE;
  }
  return TRUE;
}

/* The store directory of @kind, created if missing (no more open than the
 * production databases allow); a clear error if it cannot be (a file in
 * its place, a read-only filesystem). */
static gboolean
ensure_store_dir(const char *dir, int mode, GError **error)
{
  if (g_file_test(dir, G_FILE_TEST_EXISTS) && !g_file_test(dir, G_FILE_TEST_IS_DIR)) {
    g_set_error(error, SQLENVFS_ERROR, SQLENVFS_ERROR_INVALID,
                "backup directory %s is not a directory (move that file away, then retry)", dir);
    return FALSE;
  }
  return sqlenvfs_mkdir_p(dir, sqlenvfs_mode_dir(mode), error);
}

/* The next record number of @db's archive, and the header checksum of the
 * record before it when it reads (sqlenvfs_archive_next_seq_crc). */
static guint64
archive_next(SqlenvfsRoot *root, const char *db, gboolean *has_last_crc, guint32 *last_crc)
{
  g_autofree char *dir = g_build_filename(sqlenvfs_root_path(root, SQLENVFS_DIR_WAL), db, NULL);
  return sqlenvfs_archive_next_seq_crc(dir, has_last_crc, last_crc);
}

/* Narrow the directory open on @fd (@path, for messages) to what a
 * directory of files of @file_mode may allow: search and list only for
 * whom may read them. A directory whose group is not this process's (one
 * made in a setgid directory of another group) gets no group permission,
 * as its files get none (sqlenvfs_group_mode): the group would list the
 * copies' names while it may read none of them. */
static gboolean
narrow_dir_fd(int fd, int file_mode, const char *path)
{
  return sqlenvfs_narrow_fd(fd, sqlenvfs_group_mode(fd, sqlenvfs_mode_dir(file_mode)), path,
                            NULL);
}

/* Narrow the regular file @name of the directory open on @dirfd to @mode
 * (less the group's, as sqlenvfs_group_mode); a file with another name (a
 * hard link) is not ours to change, and a symlink is not followed. FALSE
 * when it is more open and cannot be narrowed. */
static gboolean
narrow_file_at(int dirfd, const char *name, int mode)
{
  struct stat st;
  gboolean ok = TRUE;
  int fd = openat(dirfd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0)
    return TRUE;
  if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_nlink == 1)
    ok = sqlenvfs_narrow_fd(fd, sqlenvfs_group_mode(fd, mode), name, NULL);
  close(fd);
  return ok;
}

/* The mode a copy of the database file @name (<db>.db, or one of its
 * -wal, -shm, -journal) may have: its production database's
 * (sqlenvfs_copy_mode), or @fallback when production has none. */
static int
copy_mode_of(SqlenvfsRoot *root, const char *name, int fallback)
{
  g_autofree char *db = sqlenvfs_db_of_file(name);
  g_autofree char *prod = db ? sqlenvfs_root_prod_db(root, db) : NULL;
  struct stat st;
  return prod != NULL && stat(prod, &st) == 0 ? sqlenvfs_copy_mode(&st) : fallback;
}

/* Development's database files made no more readable than production is
 * now: refresh-dev and init wrote production's rows there with the mode
 * production had then. Each <db>.db and its -wal, -shm and -journal lose
 * the read permissions its production database does not give
 * (sqlenvfs_dev_mode); nothing else changes, so that development's
 * application keeps its access. A file with another name (a hard link) is
 * not ours to change; a symlink is not followed. Sets *failed (when NULL)
 * to the first that cannot be narrowed. */
static void
narrow_dev(SqlenvfsRoot *root, char **failed)
{
  const char *dir = sqlenvfs_root_path(root, SQLENVFS_DIR_DEV);
  int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  DIR *d;
  struct dirent *ent;

  if (dfd < 0)
    return;
  d = fdopendir(dfd);
  if (d == NULL) {
    close(dfd);
    return;
  }
  while ((ent = readdir(d)) != NULL) {
    g_autofree char *base = sqlenvfs_db_of_file(ent->d_name), *prod = NULL;
    struct stat st, pst;
    int fd, mode;
    if (base == NULL)
      continue;
    fd = openat(dirfd(d), ent->d_name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0)
      continue;
    prod = sqlenvfs_root_prod_db(root, base);
    if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_nlink == 1) {
      mode = sqlenvfs_dev_mode(&st, stat(prod, &pst) == 0 ? &pst : NULL);
      if (mode != (int)(st.st_mode & 07777) && fchmod(fd, (mode_t)mode) != 0 && *failed == NULL)
        *failed = g_build_filename(dir, ent->d_name, NULL);
    }
    close(fd);
  }
  closedir(d);
}

/* The copies of both kinds, and development, made no more readable than
 * production is now (a chmod of production after they were written):
 * each database file as its production database, the MANIFESTs and the
 * directories as the narrowest of them (@manifest_mode, as a new copy
 * gets). A file with another name (a hard link) is not ours to change;
 * symlinks are not followed. What cannot be narrowed (another owner's
 * files) is said once. */
static void
narrow_copies(SqlenvfsRoot *root, int manifest_mode)
{
  static const SqlenvfsCopyKind kinds[] = { SQLENVFS_KIND_BACKUP, SQLENVFS_KIND_SNAPSHOT };
  g_autofree char *failed = NULL, *failed_dev = NULL;

  for (gsize k = 0; k < G_N_ELEMENTS(kinds); k++) {
    const char *dir = sqlenvfs_store_dir(root, kinds[k]);
    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    DIR *d;
    struct dirent *ent;
    if (dfd < 0)
      continue;
    if (!narrow_dir_fd(dfd, manifest_mode, dir) && failed == NULL)
      failed = g_strdup(dir);
    /* Every name below is opened relative to the directory already open,
     * never through a symlink put in place meanwhile. */
    d = fdopendir(dfd);
    if (d == NULL) {
      close(dfd);
      continue;
    }
    while ((ent = readdir(d)) != NULL) {
      int cfd;
      DIR *c;
      struct dirent *f;
      if (ent->d_name[0] == '.')
        continue;
      cfd = openat(dirfd(d), ent->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
      if (cfd < 0)
        continue;
      if (!narrow_dir_fd(cfd, manifest_mode, ent->d_name) && failed == NULL)
        failed = g_build_filename(dir, ent->d_name, NULL);
      c = fdopendir(cfd);
      if (c == NULL) {
        close(cfd);
        continue;
      }
      while ((f = readdir(c)) != NULL) {
        int mode = g_str_has_suffix(f->d_name, ".db")
                     ? copy_mode_of(root, f->d_name, manifest_mode) : manifest_mode;
        if (!narrow_file_at(dirfd(c), f->d_name, mode) && failed == NULL)
          failed = g_build_filename(dir, ent->d_name, f->d_name, NULL);
      }
      closedir(c);
    }
    closedir(d);
  }
  if (failed != NULL) {
    g_autofree char *top = g_path_get_dirname(sqlenvfs_root_path(root, SQLENVFS_DIR_DAILY));
    g_warning("%s is more readable than production, and its mode cannot be narrowed by this "
              "user (run `chmod -R go-rwx %s` as its owner)", failed, top);
  }
  narrow_dev(root, &failed_dev);
  if (failed_dev != NULL)
    g_warning("%s holds production's rows and is more readable than production, and its mode "
              "cannot be narrowed by this user (run `chmod go-r %s*` as its owner)",
              failed_dev, failed_dev);
}

SqlenvfsStoredCopy *
sqlenvfs_store_create(SqlenvfsRoot *root, SqlenvfsCopyKind kind, const char *db,
                      SqlenvfsProgressFunc progress, gpointer user, GError **error)
{
  const char *kind_name = sqlenvfs_copy_kind_name(kind);
  const char *dir = sqlenvfs_store_dir(root, kind);
  g_autoptr(GPtrArray) names = NULL;
  g_autoptr(GPtrArray) dbs = g_ptr_array_new_with_free_func(stored_db_free);
  g_autoptr(GPtrArray) skipped = NULL;
  g_autofree char *name = NULL, *tmp = NULL, *final = NULL;
  CreateProgress cp = { progress, user, (int)sqlenvfs_testhook_store_delay_ms() };
  SqlenvfsStoredCopy *result = NULL;
  gint64 now;
  int manifest_mode = 0644;
  int lock, tracked = -1;
  guint64 need = 0; /* the committed bytes of the sources that pass */

  if (db != NULL) {
    char *resolved = sqlenvfs_root_resolve_db(root, db, TRUE, error);
    if (resolved == NULL)
      return NULL;
    names = g_ptr_array_new_with_free_func(g_free);
    g_ptr_array_add(names, resolved);
  } else {
    names = sqlenvfs_root_list_dbs(root);
    if (names->len == 0) {
      g_set_error(error, SQLENVFS_ERROR, SQLENVFS_ERROR_NOT_FOUND,
                  "no production databases in %s (create one with `sqlenvfs init`)",
                  sqlenvfs_root_path(root, SQLENVFS_DIR_PROD));
      return NULL;
    }
  }
  /* Check before creating anything: every source must be a WAL database.
   * One database named is refused; of every database, the ones that pass
   * are copied and the others reported (skipped). */
  skipped = g_ptr_array_new_with_free_func((GDestroyNotify)g_error_free);
  for (guint i = 0; i < names->len;) {
    g_autofree char *src = sqlenvfs_root_prod_db(root, names->pdata[i]);
    g_autoptr(GError) bad = NULL;
    struct stat st;
    guint64 bytes = 0;
    if (!check_source(src, &bytes, &bad)) {
      if (db != NULL) {
        g_propagate_error(error, g_steal_pointer(&bad));
        return NULL;
      }
      g_info("%s: %s is not copied: %s", kind_name, (const char *)names->pdata[i],
                bad->message);
      g_ptr_array_add(skipped, g_steal_pointer(&bad));
      g_ptr_array_remove_index(names, i);
      continue;
    }
    if (stat(src, &st) == 0)
      manifest_mode &= sqlenvfs_copy_mode(&st) | 0600;
    need += bytes;
    i++;
  }
  if (names->len == 0) {
    GError *first = skipped->pdata[0];
    g_set_error(error, SQLENVFS_ERROR, first->code, "no database can be copied: %s%s",
                first->message,
                skipped->len > 1 ? " (and the others, see the log)" : "");
    return NULL;
  }

  if (!sqlenvfs_root_refuse_links(root, kind == SQLENVFS_KIND_SNAPSHOT ? SQLENVFS_DIR_SNAPSHOTS
                                                                       : SQLENVFS_DIR_DAILY,
                                  kind == SQLENVFS_KIND_SNAPSHOT ? "write a snapshot"
                                                                 : "write a backup",
                                  error) ||
      !ensure_store_dir(dir, sqlenvfs_root_data_mode(root, NULL), error))
    return NULL;
  lock = sqlenvfs_root_lock(root, "store", TRUE, error);
  if (lock < 0)
    return NULL;
  sqlenvfs_copy_cleanup_tmp(dir);

  now = sqlenvfs_clock_now();
  name = unique_name(dir, now);
  tmp = sqlenvfs_tmp_path(dir, name);
  final = g_build_filename(dir, name, NULL);
  /* An interrupted command line removes it (util.h): it holds copies of
   * production. Tracked before it is made, so that no signal in between
   * leaves it behind. */
  tracked = sqlenvfs_tmp_track(tmp, TRUE);
  if (mkdir(tmp, (mode_t)sqlenvfs_mode_dir(manifest_mode)) != 0) {
    sqlenvfs_error_errno(error, errno, "create backup directory", tmp);
    sqlenvfs_tmp_untrack(tracked);
    tracked = -1;
    goto out;
  }
  {
    /* No group listing of it when it took a setgid parent's group. */
    int tfd = open(tmp, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (tfd >= 0) {
      narrow_dir_fd(tfd, manifest_mode, tmp);
      close(tfd);
    }
  }
  /* Invariant 7. */
  {
    g_autofree char *what = g_strdup_printf("%s copies", kind_name);
    if (!sqlenvfs_root_check_room(root, tmp, need, what, error))
      goto out;
  }

  for (guint i = 0; i < names->len; i++) {
    const char *dbname = names->pdata[i];
    g_autofree char *src = sqlenvfs_root_prod_db(root, dbname);
    g_autofree char *file = g_strconcat(dbname, ".db", NULL);
    g_autofree char *dst = g_build_filename(tmp, file, NULL);
    SqlenvfsCopyResult res = { 0 };
    SqlenvfsStoredDb *sdb;

    gboolean has_before_crc = FALSE;
    guint32 before_crc = 0;
    guint64 before = archive_next(root, dbname, &has_before_crc, &before_crc);

    if (!sqlenvfs_copy_db(src, dst, FALSE, create_progress, &cp, &res, error)) {
      g_prefix_error(error, "%s of %s failed, nothing kept: ", kind_name, dbname);
      sqlenvfs_copy_result_clear(&res);
      goto out;
    }
    sdb = g_new0(SqlenvfsStoredDb, 1);
    sdb->db = g_strdup(dbname);
    sdb->path = g_build_filename(final, file, NULL);
    sdb->size = res.size;
    sdb->crc32 = res.crc32;
    sdb->journal_mode = g_steal_pointer(&res.journal_mode);
    sdb->pos = res.pos;
    if (sdb->pos.frame == 0 && before != 0) {
      sdb->archive_before = before;
      sdb->archive_after = archive_next(root, dbname, NULL, NULL);
      /* Which history those numbers are of (store.h). */
      sdb->has_archive_before_crc = has_before_crc;
      sdb->archive_before_crc = before_crc;
    }
    g_ptr_array_add(dbs, sdb);
    sqlenvfs_copy_result_clear(&res);
    g_info("%s %s: %s copied (%" G_GUINT64_FORMAT " bytes, WAL frame %u)", kind_name, name,
           dbname, sdb->size, sdb->pos.frame);
  }
  if (!write_manifest(tmp, kind, name, now, dbs, manifest_mode, error))
    goto out;
  if (cp.delay_ms > 0)
    g_usleep((gulong)cp.delay_ms * 1000);
  if (rename(tmp, final) != 0) {
    sqlenvfs_error_errno(error, errno, "rename into place", final);
    goto out;
  }
  if (!sqlenvfs_fsync_dir(dir, error))
    goto out;
  narrow_copies(root, manifest_mode);
  result = load_entry(root, kind, name, NULL, error);
  if (result != NULL && db == NULL)
    result->skipped = g_steal_pointer(&skipped);
  /* Each copy was just written, fsync'd and crc'd: a good base, known to
   * `list` without reading it again (verifymemo.h invariant 5). */
  for (guint i = 0; result != NULL && i < result->dbs->len; i++) {
    const SqlenvfsStoredDb *sdb = result->dbs->pdata[i];
    struct stat st;
    SqlenvfsFileId id;
    if (lstat(sdb->path, &st) != 0 || !S_ISREG(st.st_mode))
      continue;
    sqlenvfs_file_id_from_stat(&st, &id);
    sqlenvfs_verify_memo_note_base(root, sdb, &id, TRUE, NULL);
  }

out:
  if (result == NULL && tmp != NULL)
    sqlenvfs_rm_rf(tmp, NULL);
  sqlenvfs_tmp_untrack(tracked);
  sqlenvfs_root_unlock(lock);
  return result;
}

/* ----------------------------------------------------------------- list */

/* Every directory of @kind whose name is a time, and every symbolic link
 * so named (never a copy: load_entry), oldest first; entries that load go
 * to @ok, the others' names and errors to @bad_names and @bad_errors when
 * non-NULL, and the file found bad to @bad_files (may be NULL; NULL for
 * the MANIFEST), in the same order. */
static gboolean
scan(SqlenvfsRoot *root, SqlenvfsCopyKind kind, GPtrArray *ok, GPtrArray *bad_names,
     GPtrArray *bad_errors, GPtrArray *bad_files, GError **error)
{
  const char *dir = sqlenvfs_store_dir(root, kind);
  g_autoptr(GPtrArray) names = g_ptr_array_new_with_free_func(g_free);
  g_autoptr(GError) local = NULL;
  g_autoptr(GDir) d = NULL;
  const char *ent;

  if (!g_file_test(dir, G_FILE_TEST_EXISTS))
    return TRUE;
  d = g_dir_open(dir, 0, &local);
  if (d == NULL) {
    g_set_error(error, SQLENVFS_ERROR, SQLENVFS_ERROR_IO,
                "read backup directory %s: %s (check that it is a readable directory)", dir,
                local->message);
    return FALSE;
  }
  while ((ent = g_dir_read_name(d)) != NULL) {
    gint64 us;
    g_autofree char *path = g_build_filename(dir, ent, NULL);
    if (sqlenvfs_time_parse_name(ent, &us) && (g_file_test(path, G_FILE_TEST_IS_DIR) ||
                                               g_file_test(path, G_FILE_TEST_IS_SYMLINK)))
      g_ptr_array_add(names, g_strdup(ent));
  }
  g_ptr_array_sort(names, sqlenvfs_time_name_cmp);
  for (guint i = 0; i < names->len; i++) {
    g_autoptr(GError) err = NULL;
    g_autofree char *bad_file = NULL;
    SqlenvfsStoredCopy *copy = load_entry(root, kind, names->pdata[i], &bad_file, &err);
    if (copy) {
      g_ptr_array_add(ok, copy);
    } else if (err->code == SQLENVFS_ERROR_NOT_FOUND) {
      /* removed since the directory was read (a concurrent prune) */
    } else {
      g_debug("skipping %s/%s: %s", dir, (const char *)names->pdata[i], err->message);
      if (bad_names) {
        g_ptr_array_add(bad_names, g_strdup(names->pdata[i]));
        g_ptr_array_add(bad_errors, g_strdup(err->message));
        if (bad_files)
          g_ptr_array_add(bad_files, g_steal_pointer(&bad_file));
      }
    }
  }
  return TRUE;
}

/* Every entry of @kind that loads, sorted (cmp_copy); the others' names to
 * @bad_names, their errors' messages to @bad_errors and the files found
 * bad to @bad_files (may be NULL; as scan), oldest first. */
static GPtrArray *
list_entries(SqlenvfsRoot *root, SqlenvfsCopyKind kind, GPtrArray *bad_names,
             GPtrArray *bad_errors, GPtrArray *bad_files, GError **error)
{
  g_autoptr(GPtrArray) out =
    g_ptr_array_new_with_free_func((GDestroyNotify)sqlenvfs_stored_copy_free);
  if (!scan(root, kind, out, bad_names, bad_errors, bad_files, error))
    return NULL;
  g_ptr_array_sort(out, cmp_copy);
  return g_steal_pointer(&out);
}

GPtrArray *
sqlenvfs_store_list_checked(SqlenvfsRoot *root, SqlenvfsCopyKind kind, GPtrArray *unreadable,
                            GPtrArray *unreadable_names, GError **error)
{
  g_autoptr(GPtrArray) bad_names = g_ptr_array_new_with_free_func(g_free);
  g_autoptr(GPtrArray) bad_errors = g_ptr_array_new_with_free_func(g_free);
  GPtrArray *out = list_entries(root, kind, bad_names, bad_errors, NULL, error);
  if (out == NULL)
    return NULL;
  for (guint i = 0; unreadable && i < bad_errors->len; i++)
    g_ptr_array_add(unreadable, g_strdup_printf("%s %s: %s", sqlenvfs_copy_kind_name(kind),
                                                (const char *)bad_names->pdata[i],
                                                (const char *)bad_errors->pdata[i]));
  for (guint i = 0; unreadable_names && i < bad_names->len; i++)
    g_ptr_array_add(unreadable_names, g_strdup(bad_names->pdata[i]));
  return out;
}

GPtrArray *
sqlenvfs_store_list(SqlenvfsRoot *root, SqlenvfsCopyKind kind, GError **error)
{
  return sqlenvfs_store_list_checked(root, kind, NULL, NULL, error);
}

SqlenvfsStoredCopy *
sqlenvfs_store_load(SqlenvfsRoot *root, SqlenvfsCopyKind kind, const char *name, GError **error)
{
  return load_entry(root, kind, name, NULL, error);
}

static void
list_window_free(gpointer p)
{
  SqlenvfsListWindow *w = p;
  g_free(w->db);
  g_free(w->note);
  g_free(w);
}

static void
damaged_copy_free(gpointer p)
{
  SqlenvfsDamagedCopy *d = p;
  g_free(d->name);
  g_free(d->dir);
  g_free(d->manifest);
  g_free(d->file);
  g_free(d->reason);
  g_free(d);
}

/* The entries of @kind that load (as list_entries); each other one is
 * appended to @damaged, its reason the load error's message less the
 * "read <MANIFEST>: " that load_entry starts it with, or less the path of
 * the other file it found bad. */
static GPtrArray *
list_kind(SqlenvfsRoot *root, SqlenvfsCopyKind kind, GPtrArray *damaged, GError **error)
{
  g_autoptr(GPtrArray) bad_names = g_ptr_array_new_with_free_func(g_free);
  g_autoptr(GPtrArray) bad_errors = g_ptr_array_new_with_free_func(g_free);
  g_autoptr(GPtrArray) bad_files = g_ptr_array_new_with_free_func(g_free);
  GPtrArray *out = list_entries(root, kind, bad_names, bad_errors, bad_files, error);

  for (guint i = 0; out != NULL && i < bad_names->len; i++) {
    SqlenvfsDamagedCopy *d = g_new0(SqlenvfsDamagedCopy, 1);
    const char *message = bad_errors->pdata[i];
    g_autofree char *prefix = NULL;
    d->kind = kind;
    d->name = g_strdup(bad_names->pdata[i]);
    sqlenvfs_time_parse_name(d->name, &d->time); /* scan keeps only names that parse */
    d->dir = g_build_filename(sqlenvfs_store_dir(root, kind), d->name, NULL);
    d->manifest = g_build_filename(d->dir, MANIFEST, NULL);
    d->file = g_strdup(bad_files->pdata[i] ? bad_files->pdata[i] : d->manifest);
    d->unreadable = bad_files->pdata[i] == NULL && access(d->manifest, R_OK) != 0 &&
                    errno == EACCES;
    prefix = bad_files->pdata[i] ? g_strdup_printf("%s ", d->file)
                                 : g_strdup_printf("read %s: ", d->manifest);
    d->reason = g_strdup(g_str_has_prefix(message, prefix) ? message + strlen(prefix) : message);
    g_ptr_array_add(damaged, d);
  }
  return out;
}

/* A damaged-copy entry for @copy, naming @file (NULL: its MANIFEST). */
static SqlenvfsDamagedCopy *
damaged_copy_new(const SqlenvfsStoredCopy *copy, const char *file)
{
  SqlenvfsDamagedCopy *d = g_new0(SqlenvfsDamagedCopy, 1);
  d->kind = copy->kind;
  d->name = g_strdup(copy->name);
  d->time = copy->time;
  d->dir = g_strdup(copy->dir);
  d->manifest = g_build_filename(copy->dir, MANIFEST, NULL);
  d->file = g_strdup(file != NULL ? file : d->manifest);
  return d;
}

/* Move the copies of @copies a database of which is known bad (the memo of
 * base verdicts, verifymemo.h, or its file missing) to @damaged: listed as
 * ordinary copies, they looked good to someone choosing one by hand. */
static void
move_known_bad(SqlenvfsVerifyMemo *verdicts, GPtrArray *copies, GPtrArray *damaged)
{
  for (guint i = 0; i < copies->len;) {
    SqlenvfsStoredCopy *copy = copies->pdata[i];
    SqlenvfsDamagedCopy *d = NULL;
    for (guint k = 0; d == NULL && k < copy->dbs->len; k++) {
      const SqlenvfsStoredDb *sdb = copy->dbs->pdata[k];
      g_autofree char *why = NULL;
      struct stat st;
      /* A missing file has no verdict to find: it is looked for. */
      gboolean missing = lstat(sdb->path, &st) != 0 && errno == ENOENT;
      if (!missing && (verdicts == NULL || sqlenvfs_verify_memo_base_state(
                                             verdicts, sdb, &why) != SQLENVFS_BASE_BAD))
        continue;
      d = damaged_copy_new(copy, sdb->path);
      /* The file is named beside the reason: not twice. */
      d->reason = missing ? g_strdup("the database file is missing")
                  : g_strdup_printf(
                      "found bad by a check: %s",
                      why == NULL ? "?"
                      : g_str_has_prefix(why, sdb->path) && why[strlen(sdb->path)] == ' '
                        ? why + strlen(sdb->path) + 1 : why);
    }
    if (d == NULL) {
      i++;
      continue;
    }
    g_ptr_array_add(damaged, d);
    g_ptr_array_remove_index(copies, i);
  }
}

static gint
cmp_damaged(gconstpointer a, gconstpointer b)
{
  const SqlenvfsDamagedCopy *x = *(SqlenvfsDamagedCopy *const *)a;
  const SqlenvfsDamagedCopy *y = *(SqlenvfsDamagedCopy *const *)b;
  if (x->kind != y->kind)
    return x->kind < y->kind ? -1 : 1;
  return x->time < y->time ? -1 : x->time > y->time;
}

void
sqlenvfs_list_report_mark_known_bad(SqlenvfsListReport *report, SqlenvfsRoot *root)
{
  g_autofree char *memo_path = sqlenvfs_verify_memo_path(root);
  g_autoptr(SqlenvfsVerifyMemo) verdicts =
    sqlenvfs_verify_memo_load(memo_path, g_get_real_time(), NULL);
  move_known_bad(verdicts, report->backups, report->damaged);
  move_known_bad(verdicts, report->snapshots, report->damaged);
  g_ptr_array_sort(report->damaged, cmp_damaged);
}

void
sqlenvfs_list_report_mark_foreign(SqlenvfsListReport *report, SqlenvfsCopyKind kind,
                                  const char *name, const char *reason)
{
  GPtrArray *copies = kind == SQLENVFS_KIND_SNAPSHOT ? report->snapshots : report->backups;
  for (guint i = 0; i < copies->len; i++) {
    SqlenvfsStoredCopy *copy = copies->pdata[i];
    SqlenvfsDamagedCopy *d;
    if (strcmp(copy->name, name) != 0)
      continue;
    d = damaged_copy_new(copy, NULL);
    d->foreign = TRUE;
    d->reason = g_strdup(reason);
    g_ptr_array_add(report->damaged, d);
    g_ptr_array_remove_index(copies, i);
    g_ptr_array_sort(report->damaged, cmp_damaged);
    return;
  }
}

SqlenvfsListReport *
sqlenvfs_store_list_report(SqlenvfsRoot *root, GError **error)
{
  g_autoptr(SqlenvfsListReport) report = g_new0(SqlenvfsListReport, 1);
  report->windows = g_ptr_array_new_with_free_func(list_window_free);
  report->tails = g_ptr_array_new_with_free_func(list_window_free);
  report->damaged = g_ptr_array_new_with_free_func(damaged_copy_free);
  report->backups = list_kind(root, SQLENVFS_KIND_BACKUP, report->damaged, error);
  if (report->backups == NULL)
    return NULL;
  report->snapshots = list_kind(root, SQLENVFS_KIND_SNAPSHOT, report->damaged, error);
  if (report->snapshots == NULL)
    return NULL;
  return g_steal_pointer(&report);
}

/* What to do about the damaged copy @d (sqlenvfs_damaged_copies_json). */
static char *
damaged_copy_action(const SqlenvfsDamagedCopy *d, const char *remote_url)
{
  const char *kind = sqlenvfs_copy_kind_name(d->kind);
  if (d->unreadable)
    return g_strdup_printf("not used by a restore this user runs: run sqlenvfs as the user that "
                           "owns the root's files, or give %s back to that user (chown -R); "
                           "do not remove it for this", d->dir);
  if (d->foreign)
    return g_strdup_printf("never used by a restore of this root: it was taken in another "
                           "history (a copy of the root); move %s back to the root it was "
                           "taken in, or remove it", d->dir);
  if (remote_url != NULL)
    return g_strdup_printf("never used by a restore: run sqlenvfs verify --remote %s, and take a "
                           "new %s on the root that ships to it", remote_url, kind);
  if (strcmp(d->file, d->manifest) != 0)
    return g_strdup_printf("never used by a restore: take a new %s (sqlenvfs %s) to replace "
                           "it, check the disk, then remove %s (sqlenvfs verify fails while it "
                           "is there)", kind, kind, d->dir);
  return g_strdup_printf("never used by a restore: run sqlenvfs verify, take a new %s (sqlenvfs "
                         "%s) to replace it, then inspect and remove %s yourself (prune never "
                         "removes it)", kind, kind, d->dir);
}

void
sqlenvfs_damaged_copies_json(SqlenvfsJson *j, const GPtrArray *damaged, const char *remote_url)
{
  sqlenvfs_json_begin_array(j);
  for (guint i = 0; i < damaged->len; i++) {
    const SqlenvfsDamagedCopy *d = damaged->pdata[i];
    g_autofree char *when = sqlenvfs_time_format_iso(d->time);
    g_autofree char *action = damaged_copy_action(d, remote_url);
    sqlenvfs_json_begin_object(j);
    sqlenvfs_json_member_string(j, "kind", sqlenvfs_copy_kind_name(d->kind));
    sqlenvfs_json_member_string(j, "name", d->name);
    sqlenvfs_json_member_string(j, "time", when);
    sqlenvfs_json_member_string(j, "dir", d->dir);
    sqlenvfs_json_member_string(j, "manifest", d->manifest);
    sqlenvfs_json_member_string(j, "file", d->file);
    sqlenvfs_json_member_bool(j, "unreadable", d->unreadable);
    sqlenvfs_json_member_string(j, "reason", d->reason);
    sqlenvfs_json_member_string(j, "action", action);
    sqlenvfs_json_end_object(j);
  }
  sqlenvfs_json_end_array(j);
}

void
sqlenvfs_list_report_free(SqlenvfsListReport *report)
{
  if (report == NULL)
    return;
  if (report->backups)
    g_ptr_array_unref(report->backups);
  if (report->snapshots)
    g_ptr_array_unref(report->snapshots);
  if (report->damaged)
    g_ptr_array_unref(report->damaged);
  if (report->windows)
    g_ptr_array_unref(report->windows);
  if (report->tails)
    g_ptr_array_unref(report->tails);
  g_free(report);
}

SqlenvfsListWindow *
sqlenvfs_list_report_add_window(SqlenvfsListReport *report, const char *db, gint64 from_us,
                                gint64 to_us, const char *note)
{
  SqlenvfsListWindow *w = g_new0(SqlenvfsListWindow, 1);
  w->db = g_strdup(db);
  w->from_us = from_us;
  w->to_us = to_us;
  w->note = g_strdup(note);
  g_ptr_array_add(report->windows, w);
  return w;
}

/* ---------------------------------------------------------- base checks */

gboolean
sqlenvfs_file_id_get(int fd, const char *path, SqlenvfsFileId *id, GError **error)
{
  struct stat st;
  if (fstat(fd, &st) != 0)
    return sqlenvfs_error_errno(error, errno, "stat", path);
  sqlenvfs_file_id_from_stat(&st, id);
  return TRUE;
}

void
sqlenvfs_file_id_from_stat(const struct stat *st, SqlenvfsFileId *id)
{
  id->dev = (guint64)st->st_dev;
  id->ino = (guint64)st->st_ino;
  id->size = (guint64)st->st_size;
  id->mtime_ns = (gint64)st->st_mtim.tv_sec * 1000000000 + st->st_mtim.tv_nsec;
  id->ctime_ns = (gint64)st->st_ctim.tv_sec * 1000000000 + st->st_ctim.tv_nsec;
}

gboolean
sqlenvfs_file_id_removed_only(const SqlenvfsFileId *id, const struct stat *st)
{
  return st->st_nlink == 0 && (guint64)st->st_dev == id->dev && (guint64)st->st_ino == id->ino &&
         (guint64)st->st_size == id->size &&
         (gint64)st->st_mtim.tv_sec * 1000000000 + st->st_mtim.tv_nsec == id->mtime_ns;
}

gboolean
sqlenvfs_file_id_equal(const SqlenvfsFileId *a, const SqlenvfsFileId *b)
{
  return a->dev == b->dev && a->ino == b->ino && a->size == b->size &&
         a->mtime_ns == b->mtime_ns && a->ctime_ns == b->ctime_ns;
}



/* The reason a base whose bytes have crc32 @crc is not @sdb's, or NULL. */
static char *
crc_mismatch(const SqlenvfsStoredDb *sdb, guint32 crc)
{
  if (crc == sdb->crc32)
    return NULL;
  return g_strdup_printf("%s has crc32 0x%08x, the MANIFEST says 0x%08x (its bytes changed after "
                         "it was written)", sdb->path, crc, sdb->crc32);
}

/* Compare the file open on @fd (@size bytes) with what its MANIFEST says
 * (checks 1-4 of sqlenvfs_store_check_base; 1-3 only, nothing read past
 * the header, unless @with_crc). FALSE and *reason, one line naming the
 * file, when they disagree or the file cannot be read. */
static gboolean
check_fields(const SqlenvfsStoredDb *sdb, int fd, guint64 size, gboolean with_crc, char **reason)
{
  const SqlenvfsWalPos *p = &sdb->pos;
  g_autofree guint8 *buf = NULL;
  guint8 hdr[100];
  guint32 hps, crc = 0;
  guint64 off = 0;

  if (!sqlenvfs_page_size_ok(p->page_size)) {
    *reason = g_strdup_printf("the MANIFEST of %s says page-size=%u, which no SQLite database "
                              "has (the MANIFEST is damaged)", sdb->path, p->page_size);
    return FALSE;
  }
  if (p->n_pages == 0 || (guint64)p->page_size * p->n_pages != sdb->size) {
    *reason = g_strdup_printf("the MANIFEST of %s says size=%" G_GUINT64_FORMAT " but page-size "
                              "%u x page-count %u = %" G_GUINT64_FORMAT " (the MANIFEST is "
                              "damaged)", sdb->path, sdb->size, p->page_size, p->n_pages,
                              (guint64)p->page_size * p->n_pages);
    return FALSE;
  }
  if (size != sdb->size) {
    *reason = g_strdup_printf("%s has %" G_GUINT64_FORMAT " bytes, the MANIFEST says %"
                              G_GUINT64_FORMAT " (truncated or replaced)", sdb->path, size,
                              sdb->size);
    return FALSE;
  }
  if (pread(fd, hdr, sizeof hdr, 0) != (ssize_t)sizeof hdr) {
    *reason = g_strdup_printf("%s: cannot read its SQLite header: %s", sdb->path,
                              g_strerror(errno));
    return FALSE;
  }
  if (memcmp(hdr, "SQLite format 3", 16) != 0) {
    *reason = g_strdup_printf("%s does not start with an SQLite header (its bytes changed after "
                              "it was written)", sdb->path);
    return FALSE;
  }
  hps = sqlenvfs_db_page_size(hdr);
  if (hps != p->page_size) {
    *reason = g_strdup_printf("%s has pages of %u bytes in its SQLite header, the MANIFEST says "
                              "%u", sdb->path, hps, p->page_size);
    return FALSE;
  }
  /* The header's page count is valid when its change counter matches. */
  if (sqlenvfs_be32(hdr + 24) == sqlenvfs_be32(hdr + 92) && sqlenvfs_be32(hdr + 28) != p->n_pages) {
    *reason = g_strdup_printf("%s has %u pages in its SQLite header, the MANIFEST says %u",
                              sdb->path, sqlenvfs_be32(hdr + 28), p->n_pages);
    return FALSE;
  }
  if (!with_crc)
    return TRUE;
  buf = g_malloc(1 << 20);
  while (off < size) {
    ssize_t n = pread(fd, buf, (size_t)MIN((guint64)1 << 20, size - off), (off_t)off);
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0) {
      *reason = g_strdup_printf("%s: read failed at byte %" G_GUINT64_FORMAT ": %s", sdb->path,
                                off, n < 0 ? g_strerror(errno) : "unexpected end of file");
      return FALSE;
    }
    crc = sqlenvfs_crc32(crc, buf, (gsize)n);
    off += (guint64)n;
  }
  *reason = crc_mismatch(sdb, crc);
  return *reason == NULL;
}

/* A remembered verdict of check_base (invariant 6). */
typedef struct {
  SqlenvfsFileId id;
  guint64 size;
  guint32 crc32, page_size, n_pages;
  char *reason; /* NULL: good */
} Verdict;

static GMutex verdicts_lock;
static GHashTable *verdicts; /* path -> Verdict * */

static void
verdict_free(gpointer p)
{
  Verdict *v = p;
  g_free(v->reason);
  g_free(v);
}

static gboolean
verdict_applies(const Verdict *v, const SqlenvfsFileId *id, const SqlenvfsStoredDb *sdb)
{
  return sqlenvfs_file_id_equal(&v->id, id) && v->size == sdb->size && v->crc32 == sdb->crc32 &&
         v->page_size == sdb->pos.page_size && v->n_pages == sdb->pos.n_pages;
}

/* The remembered verdict on the file @before of @sdb: TRUE with *ok (and
 * *error when bad) if there is one. */
static gboolean
recall(const SqlenvfsStoredDb *sdb, const SqlenvfsFileId *before, gboolean *ok, GError **error)
{
  gboolean known = FALSE;
  g_mutex_lock(&verdicts_lock);
  if (verdicts != NULL) {
    const Verdict *v = g_hash_table_lookup(verdicts, sdb->path);
    if (v != NULL && verdict_applies(v, before, sdb)) {
      known = TRUE;
      *ok = v->reason == NULL;
      if (!*ok)
        g_set_error(error, SQLENVFS_ERROR, SQLENVFS_ERROR_INTEGRITY, "check base %s: %s",
                    sdb->path, v->reason);
    }
  }
  g_mutex_unlock(&verdicts_lock);
  return known;
}

/* Remember the verdict @reason (NULL: good) on the file @before of @sdb,
 * once it is sure that the file did not change while it was checked (it is
 * still @before on @fd). FALSE and *error when it did, or when the verdict
 * is bad. */
static gboolean
remember(const SqlenvfsStoredDb *sdb, int fd, const SqlenvfsFileId *before, const char *reason,
         GError **error)
{
  SqlenvfsFileId after;
  struct stat st;

  if (fstat(fd, &st) != 0)
    return sqlenvfs_error_errno(error, errno, "stat", sdb->path);
  sqlenvfs_file_id_from_stat(&st, &after);
  if (sqlenvfs_file_id_removed_only(before, &st)) {
    /* Removed while it was checked (a prune), not written: the verdict on
     * what was read stands, and there is no file left to remember it of. */
    if (reason != NULL)
      g_set_error(error, SQLENVFS_ERROR, SQLENVFS_ERROR_INTEGRITY, "check base %s: %s",
                  sdb->path, reason);
    return reason == NULL;
  }
  if (!sqlenvfs_file_id_equal(before, &after)) {
    g_set_error(error, SQLENVFS_ERROR, SQLENVFS_ERROR_INTEGRITY,
                "check base %s: the file changed while it was checked (something writes to the "
                "store; retry, and run `sqlenvfs verify`)", sdb->path);
    return FALSE;
  }
  g_mutex_lock(&verdicts_lock);
  if (verdicts == NULL || g_hash_table_size(verdicts) >= 4096) {
    g_clear_pointer(&verdicts, g_hash_table_destroy);
    verdicts = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, verdict_free);
  }
  {
    Verdict *v = g_new0(Verdict, 1);
    v->id = *before;
    v->size = sdb->size;
    v->crc32 = sdb->crc32;
    v->page_size = sdb->pos.page_size;
    v->n_pages = sdb->pos.n_pages;
    v->reason = g_strdup(reason);
    g_hash_table_replace(verdicts, g_strdup(sdb->path), v);
  }
  g_mutex_unlock(&verdicts_lock);
  if (reason != NULL) {
    g_info("base %s is not what its MANIFEST says: %s", sdb->path, reason);
    g_set_error(error, SQLENVFS_ERROR, SQLENVFS_ERROR_INTEGRITY, "check base %s: %s", sdb->path,
                reason);
    return FALSE;
  }
  return TRUE;
}

gboolean
sqlenvfs_store_check_base(const SqlenvfsStoredDb *sdb, int fd, SqlenvfsFileId *id,
                          GError **error)
{
  SqlenvfsFileId before;
  g_autofree char *reason = NULL;
  gboolean ok;

  if (!sqlenvfs_file_id_get(fd, sdb->path, &before, error))
    return FALSE;
  if (id)
    *id = before;
  if (recall(sdb, &before, &ok, error))
    return ok;
  check_fields(sdb, fd, before.size, TRUE, &reason);
  return remember(sdb, fd, &before, reason, error);
}

gboolean
sqlenvfs_store_check_base_start(const SqlenvfsStoredDb *sdb, int fd, SqlenvfsFileId *id,
                                gboolean *is_crc_due, GError **error)
{
  g_autofree char *reason = NULL;
  gboolean ok;

  *is_crc_due = FALSE;
  if (!sqlenvfs_file_id_get(fd, sdb->path, id, error))
    return FALSE;
  if (recall(sdb, id, &ok, error))
    return ok;
  if (!check_fields(sdb, fd, id->size, FALSE, &reason))
    return remember(sdb, fd, id, reason, error);
  *is_crc_due = TRUE;
  return TRUE;
}

gboolean
sqlenvfs_store_check_base_crc(const SqlenvfsStoredDb *sdb, int fd, const SqlenvfsFileId *id,
                              guint32 crc, GError **error)
{
  g_autofree char *reason = crc_mismatch(sdb, crc);
  return remember(sdb, fd, id, reason, error);
}

gboolean
sqlenvfs_store_base_known_bad(const SqlenvfsStoredDb *sdb, char **reason)
{
  SqlenvfsFileId id;
  gboolean bad = FALSE;
  int fd = open(sdb->path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);

  if (fd < 0)
    return FALSE; /* the check itself says what is wrong */
  if (!sqlenvfs_file_id_get(fd, sdb->path, &id, NULL)) {
    close(fd);
    return FALSE;
  }
  close(fd);
  g_mutex_lock(&verdicts_lock);
  if (verdicts != NULL) {
    const Verdict *v = g_hash_table_lookup(verdicts, sdb->path);
    if (v != NULL && verdict_applies(v, &id, sdb) && v->reason != NULL) {
      bad = TRUE;
      if (reason)
        *reason = g_strdup(v->reason);
    }
  }
  g_mutex_unlock(&verdicts_lock);
  return bad;
}

/* --------------------------------------------------------------- verify */

/* Check one stored database (every MANIFEST field against the file, then
 * integrity_check; nothing remembered); on failure *reason says why.
 * *base_bad (may be NULL) is set when the base check itself failed on the
 * file as *id. */
static gboolean
check_stored(const SqlenvfsStoredDb *sdb, char **reason, gboolean *base_bad, SqlenvfsFileId *id)
{
  g_autoptr(GError) err = NULL;
  struct stat st;
  int fd = open(sdb->path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  gboolean ok;

  if (fd < 0) {
    *reason = g_strdup_printf("%s is missing: %s", sdb->path, g_strerror(errno));
    return FALSE;
  }
  if (fstat(fd, &st) != 0) {
    *reason = g_strdup_printf("%s: %s", sdb->path, g_strerror(errno));
    close(fd);
    return FALSE;
  }
  ok = check_fields(sdb, fd, (guint64)st.st_size, TRUE, reason);
  close(fd);
  if (!ok) {
    if (base_bad != NULL) {
      *base_bad = TRUE;
      sqlenvfs_file_id_from_stat(&st, id);
    }
    return FALSE;
  }
  {
    g_autofree char *uri = sqlenvfs_db_uri_immutable(sdb->path);
    g_autoptr(sqlite3) db = sqlenvfs_db_open(uri, SQLENVFS_OPEN_READONLY, &err);
    if (db == NULL || !sqlenvfs_db_check(db, FALSE, sdb->path, &err)) {
      *reason = g_strdup(err->message);
      return FALSE;
    }
  }
  return TRUE;
}

gboolean
sqlenvfs_store_verify_db(const SqlenvfsStoredDb *sdb, GError **error)
{
  g_autofree char *reason = NULL;
  if (check_stored(sdb, &reason, NULL, NULL))
    return TRUE;
  g_set_error(error, SQLENVFS_ERROR, SQLENVFS_ERROR_INTEGRITY, "verify %s: %s", sdb->path,
              reason);
  return FALSE;
}

static void
check_free(gpointer p)
{
  SqlenvfsCheck *c = p;
  g_free(c->kind);
  g_free(c->name);
  g_free(c->db);
  g_free(c->path);
  g_free(c->reason);
  g_free(c);
}

SqlenvfsVerifyReport *
sqlenvfs_verify_report_new(void)
{
  SqlenvfsVerifyReport *r = g_new0(SqlenvfsVerifyReport, 1);
  r->checks = g_ptr_array_new_with_free_func(check_free);
  return r;
}

void
sqlenvfs_verify_report_free(SqlenvfsVerifyReport *report)
{
  if (report == NULL)
    return;
  g_ptr_array_unref(report->checks);
  g_free(report->memo_note);
  g_free(report);
}

void
sqlenvfs_verify_report_add(SqlenvfsVerifyReport *report, const char *kind, const char *name,
                           const char *db, const char *path, gboolean ok, const char *reason)
{
  SqlenvfsCheck *c = g_new0(SqlenvfsCheck, 1);
  c->kind = g_strdup(kind);
  c->name = g_strdup(name);
  c->db = g_strdup(db);
  c->path = g_strdup(path);
  c->ok = ok;
  c->reason = ok ? NULL : g_strdup(reason ? reason : "failed");
  g_ptr_array_add(report->checks, c);
}

guint
sqlenvfs_verify_report_n_bad(const SqlenvfsVerifyReport *report)
{
  guint n = 0;
  for (guint i = 0; i < report->checks->len; i++)
    if (!((SqlenvfsCheck *)report->checks->pdata[i])->ok)
      n++;
  return n;
}

gboolean
sqlenvfs_store_verify_all(SqlenvfsRoot *root, SqlenvfsVerifyReport *report, GError **error)
{
  return sqlenvfs_store_verify_all_with(root, NULL, report, error);
}

gboolean
sqlenvfs_store_verify_all_with(SqlenvfsRoot *root, const SqlenvfsStoreVerifyMemo *memo,
                               SqlenvfsVerifyReport *report, GError **error)
{
  static const SqlenvfsCopyKind kinds[] = { SQLENVFS_KIND_BACKUP, SQLENVFS_KIND_SNAPSHOT };

  for (gsize k = 0; k < G_N_ELEMENTS(kinds); k++) {
    const char *kind = sqlenvfs_copy_kind_name(kinds[k]);
    g_autoptr(GPtrArray) ok =
      g_ptr_array_new_with_free_func((GDestroyNotify)sqlenvfs_stored_copy_free);
    g_autoptr(GPtrArray) bad_names = g_ptr_array_new_with_free_func(g_free);
    g_autoptr(GPtrArray) bad_errors = g_ptr_array_new_with_free_func(g_free);
    g_autoptr(GPtrArray) all = g_ptr_array_new();

    if (!scan(root, kinds[k], ok, bad_names, bad_errors, NULL, error))
      return FALSE;
    /* Report in time order, good and bad entries together. */
    for (guint i = 0; i < ok->len; i++)
      g_ptr_array_add(all, ((SqlenvfsStoredCopy *)ok->pdata[i])->name);
    for (guint i = 0; i < bad_names->len; i++)
      g_ptr_array_add(all, bad_names->pdata[i]);
    g_ptr_array_sort(all, sqlenvfs_time_name_cmp);

    for (guint i = 0; i < all->len; i++) {
      const char *name = all->pdata[i];
      g_autofree char *dir = g_build_filename(sqlenvfs_store_dir(root, kinds[k]), name, NULL);
      gboolean found = FALSE;
      for (guint j = 0; j < ok->len && !found; j++) {
        const SqlenvfsStoredCopy *copy = ok->pdata[j];
        if (copy->name != name)
          continue;
        found = TRUE;
        if (!copy->is_protected) {
          g_autofree char *manifest = g_build_filename(copy->dir, MANIFEST, NULL);
          sqlenvfs_verify_report_add(report, kind, name, NULL, manifest, FALSE,
                                     "unprotected: the MANIFEST is of format 1 and carries no "
                                     "checksum, so a change to its WAL position cannot be "
                                     "detected (its copies are still checked and used; take a "
                                     "new one to replace it)");
        }
        for (guint d = 0; d < copy->dbs->len; d++) {
          const SqlenvfsStoredDb *sdb = copy->dbs->pdata[d];
          g_autofree char *reason = NULL;
          gint64 verified_us = 0;
          gboolean good, base_bad = FALSE;
          SqlenvfsFileId bad_id;
          if (memo != NULL && memo->known != NULL && memo->known(memo->user, sdb, &verified_us)) {
            sqlenvfs_verify_report_add(report, kind, name, sdb->db, sdb->path, TRUE, NULL);
            ((SqlenvfsCheck *)g_ptr_array_index(report->checks, report->checks->len - 1))
              ->verified_us = verified_us;
            report->n_copies_skipped++;
            continue;
          }
          good = check_stored(sdb, &reason, &base_bad, &bad_id);
          if (!good && !g_file_test(copy->dir, G_FILE_TEST_IS_DIR))
            break; /* pruned while we were checking it */
          sqlenvfs_verify_report_add(report, kind, name, sdb->db, sdb->path, good, reason);
          report->n_copies_checked++;
          if (good && memo != NULL && memo->done != NULL)
            memo->done(memo->user, sdb);
          if (base_bad && memo != NULL && memo->base_bad != NULL)
            memo->base_bad(memo->user, sdb, &bad_id, reason);
        }
      }
      for (guint j = 0; j < bad_names->len && !found; j++) {
        if (bad_names->pdata[j] != name)
          continue;
        found = TRUE;
        sqlenvfs_verify_report_add(report, kind, name, NULL, dir, FALSE, bad_errors->pdata[j]);
      }
    }
  }
  return TRUE;
}

/* ---------------------------------------------------------------- prune */

void
sqlenvfs_prune_item_free(SqlenvfsPruneItem *item)
{
  if (item == NULL)
    return;
  g_free(item->name);
  g_free(item->dir);
  g_free(item->reason);
  g_free(item);
}

static SqlenvfsPruneItem *
new_item(SqlenvfsCopyKind kind, const char *name, const char *dir, gboolean remove,
         char *reason /* taken */)
{
  SqlenvfsPruneItem *item = g_new0(SqlenvfsPruneItem, 1);
  item->kind = kind;
  item->name = g_strdup(name);
  item->dir = g_strdup(dir);
  item->remove = remove;
  item->reason = reason;
  return item;
}

/* Remove one complete entry so that it never looks like a backup again:
 * rename it to a temporary name first (invariant 1), then delete. */
static gboolean
remove_entry(const SqlenvfsStoredCopy *copy, GError **error)
{
  g_autofree char *parent = g_path_get_dirname(copy->dir);
  g_autofree char *doomed = g_strdup_printf("%s/.tmp-del-%s-%d", parent, copy->name, (int)getpid());
  if (rename(copy->dir, doomed) != 0)
    return sqlenvfs_error_errno(error, errno, "remove", copy->dir);
  if (!sqlenvfs_fsync_dir(parent, error))
    return FALSE;
  /* The removal durable as prune reports it: the copy must not come back
   * under its temporary name after a power cut. */
  return sqlenvfs_rm_rf(doomed, error) && sqlenvfs_fsync_dir(parent, error);
}

#define MISDATED_SLACK_US (60 * G_USEC_PER_SEC)

char *
sqlenvfs_stored_copy_misdated(const SqlenvfsStoredCopy *copy, gint64 now)
{
  const char *kind = sqlenvfs_copy_kind_name(copy->kind);
  /* A name that is not the one its MANIFEST was written for never loads
   * (load_entry): only the clock can have dated a copy wrongly. */
  if (copy->time > now + MISDATED_SLACK_US)
    return g_strdup_printf("its name is in the future: the clock was ahead when it was taken; "
                           "take a new %s, then remove it (`rm -r %s`) once you have looked at "
                           "it",
                           kind, copy->dir);
  return NULL;
}

/* For each database, the newest copy in @copies (oldest first) that passes
 * verification and is dated correctly (@misdated[i] NULL) is protected:
 * its index is stored in @protect under the database name. */
static void
find_newest_valid(GPtrArray *copies, char **misdated, GHashTable *protect)
{
  g_autoptr(GHashTable) settled = g_hash_table_new(g_str_hash, g_str_equal);
  for (guint i = copies->len; i-- > 0;) {
    const SqlenvfsStoredCopy *copy = copies->pdata[i];
    if (misdated[i] != NULL)
      continue;
    for (guint d = 0; d < copy->dbs->len; d++) {
      const SqlenvfsStoredDb *sdb = copy->dbs->pdata[d];
      g_autofree char *reason = NULL;
      if (g_hash_table_contains(settled, sdb->db))
        continue;
      if (check_stored(sdb, &reason, NULL, NULL)) {
        g_hash_table_add(settled, sdb->db);
        g_hash_table_insert(protect, GUINT_TO_POINTER(i + 1),
                            g_strdup_printf("the newest valid %s of %s",
                                            sqlenvfs_copy_kind_name(copy->kind), sdb->db));
      } else {
        g_info("prune: %s is not valid: %s", sdb->path, reason);
      }
    }
  }
}

static gboolean
prune_kind(SqlenvfsRoot *root, SqlenvfsCopyKind kind, gboolean dry_run,
           SqlenvfsPruneKeepFunc keep, gpointer user, GPtrArray *items, GError **error)
{
  const SqlenvfsSettings *s = sqlenvfs_root_settings(root);
  int keep_days = kind == SQLENVFS_KIND_SNAPSHOT ? s->snapshot_keep_days : s->daily_keep_days;
  int keep_count = kind == SQLENVFS_KIND_SNAPSHOT ? s->snapshot_keep_count : s->daily_keep_count;
  const char *kind_name = sqlenvfs_copy_kind_name(kind);
  g_autoptr(GPtrArray) copies =
    g_ptr_array_new_with_free_func((GDestroyNotify)sqlenvfs_stored_copy_free);
  g_autoptr(GPtrArray) bad_names = g_ptr_array_new_with_free_func(g_free);
  g_autoptr(GPtrArray) bad_errors = g_ptr_array_new_with_free_func(g_free);
  g_autoptr(GHashTable) protect = g_hash_table_new_full(NULL, NULL, NULL, g_free);
  gint64 now = sqlenvfs_clock_now();
  gint64 max_age = (gint64)keep_days * 86400 * G_USEC_PER_SEC;

  g_autoptr(GPtrArray) misdated = g_ptr_array_new_with_free_func(g_free);
  guint from_newest = 0;

  if (!scan(root, kind, copies, bad_names, bad_errors, NULL, error))
    return FALSE;
  g_ptr_array_sort(copies, cmp_copy);
  for (guint i = 0; i < copies->len; i++)
    g_ptr_array_add(misdated, sqlenvfs_stored_copy_misdated(copies->pdata[i], now));
  find_newest_valid(copies, (char **)misdated->pdata, protect);
  for (guint i = 0; i < copies->len; i++)
    from_newest += misdated->pdata[i] == NULL;

  for (guint i = 0; i < bad_names->len; i++) {
    g_autofree char *dir = g_build_filename(sqlenvfs_store_dir(root, kind),
                                            (const char *)bad_names->pdata[i], NULL);
    g_ptr_array_add(items, new_item(kind, bad_names->pdata[i], dir, FALSE,
                                    g_strdup_printf("left for inspection: %s (see `sqlenvfs "
                                                    "verify`)",
                                                    (const char *)bad_errors->pdata[i])));
  }
  for (guint i = 0; i < copies->len; i++) {
    const SqlenvfsStoredCopy *copy = copies->pdata[i];
    gboolean too_old, too_many;
    const char *protected_why = g_hash_table_lookup(protect, GUINT_TO_POINTER(i + 1));
    char *why = NULL;

    /* Neither counted among the newest nor removed by its age, which its
     * name does not tell. */
    if (misdated->pdata[i] != NULL) {
      g_ptr_array_add(items, new_item(kind, copy->name, copy->dir, FALSE,
                                      g_strdup_printf("left for inspection: %s",
                                                      (const char *)misdated->pdata[i])));
      continue;
    }
    from_newest--; /* the correctly dated copies after this one */
    too_old = keep_days > 0 && now - copy->time > max_age;
    too_many = keep_count > 0 && from_newest >= (guint)keep_count;
    if (!too_old && !too_many) {
      g_ptr_array_add(items,
                      new_item(kind, copy->name, copy->dir, FALSE,
                               keep_days > 0 ? g_strdup_printf("within %d days", keep_days)
                               : keep_count > 0
                                 ? g_strdup_printf("among the newest %d", keep_count)
                                 : g_strdup("no retention limit set")));
      continue;
    }
    if (protected_why) {
      g_ptr_array_add(items, new_item(kind, copy->name, copy->dir, FALSE,
                                      g_strdup_printf("kept: %s", protected_why)));
      continue;
    }
    if (keep && keep(copy, user, &why)) {
      g_ptr_array_add(items, new_item(kind, copy->name, copy->dir, FALSE,
                                      g_strdup_printf("kept: %s", why ? why : "still needed")));
      g_free(why);
      continue;
    }
    g_free(why);
    if (!dry_run && !remove_entry(copy, error))
      return FALSE;
    g_ptr_array_add(items,
                    new_item(kind, copy->name, copy->dir, TRUE,
                             too_old ? g_strdup_printf("older than %d days", keep_days)
                                     : g_strdup_printf("beyond the newest %d", keep_count)));
    g_info("prune: %s %s %s", dry_run ? "would remove" : "removed", kind_name, copy->name);
  }
  return TRUE;
}

static gint
cmp_item(gconstpointer a, gconstpointer b)
{
  const SqlenvfsPruneItem *x = *(SqlenvfsPruneItem *const *)a;
  const SqlenvfsPruneItem *y = *(SqlenvfsPruneItem *const *)b;
  if (x->kind != y->kind)
    return x->kind < y->kind ? -1 : 1;
  return sqlenvfs_time_name_cmp(&x->name, &y->name);
}

GPtrArray *
sqlenvfs_store_prune(SqlenvfsRoot *root, gboolean dry_run, SqlenvfsPruneKeepFunc keep,
                     gpointer user, GError **error)
{
  g_autoptr(GPtrArray) items =
    g_ptr_array_new_with_free_func((GDestroyNotify)sqlenvfs_prune_item_free);
  gboolean ok = TRUE;
  int lock = -1;

  /* Refused as a whole, also --dry-run: what it lists is what a run does. */
  if (!sqlenvfs_root_refuse_links(root, SQLENVFS_DIR_DAILY, "remove old backups", error) ||
      !sqlenvfs_root_refuse_links(root, SQLENVFS_DIR_SNAPSHOTS, "remove old snapshots", error))
    return NULL;
  if (!dry_run) {
    lock = sqlenvfs_root_lock(root, "store", TRUE, error);
    if (lock < 0)
      return NULL;
    sqlenvfs_copy_cleanup_tmp(sqlenvfs_store_dir(root, SQLENVFS_KIND_BACKUP));
    sqlenvfs_copy_cleanup_tmp(sqlenvfs_store_dir(root, SQLENVFS_KIND_SNAPSHOT));
  }
  ok = prune_kind(root, SQLENVFS_KIND_BACKUP, dry_run, keep, user, items, error) &&
       prune_kind(root, SQLENVFS_KIND_SNAPSHOT, dry_run, keep, user, items, error);
  if (lock >= 0)
    sqlenvfs_root_unlock(lock);
  if (!ok)
    return NULL;
  g_ptr_array_sort(items, cmp_item);
  return g_steal_pointer(&items);
}
