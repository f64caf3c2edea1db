/*
 * diff.c — diff/<t1>/<t2>/<db>.sql and <db>.summary: the script or summary
 * of `sqlenvfs diff` between two times, made whole in memory and served
 * read-only (the mount's rendering of sqlenvfs_diff_run, diff.h).
 *
 * A document is made when its file is looked up, so that a stat shows its
 * real size (tar, rsync -a and cp copy that many bytes), and kept for the
 * open that follows: the last DOCS_MAX made, DOCS_MAX_BYTES in all, keyed
 * by the database, the kind and the two times as resolved (a name such as
 * `latest` resolves to a later time once more is archived, and so to
 * another document). The state at a time never changes, so neither does
 * its document.
 *
 * The daemon that builds them also archives, so what they take is bounded:
 * one is made at a time, and one that grows past DOC_MAX_BYTES is refused
 * (EPERM; the log says to run `sqlenvfs diff`, which writes as it goes),
 * and that refusal is remembered like a document.
 */
#include "fs.h"

#include <string.h>

#include "sqlenvfs/diff.h"
#include "sqlenvfs/error.h"
#include "sqlenvfs/testhooks.h"
#include "sqlenvfs/timefmt.h"

gboolean
fs_diff_resolve_time(Fs *fs, const char *name, gint64 *time_us, gboolean *is_lasting,
                     GError **error)
{
  gint64 earliest, latest;

  if (strcmp(name, "earliest") != 0 && strcmp(name, "latest") != 0)
    return fs_pitr_resolve_time(fs->pitr, "diff", name, time_us, is_lasting, error);
  *is_lasting = FALSE;
  if (!fs_pitr_window(fs->pitr, &earliest, &latest, error))
    return FALSE;
  *time_us = name[0] == 'l' ? fs_pitr_latest_for(fs->pitr, 0, latest) : earliest;
  return TRUE;
}

GPtrArray *
fs_diff_list(Fs *fs, const FsWhere *where, GError **error)
{
  gint64 t1, t2;
  gboolean is_lasting;
  g_autoptr(GPtrArray) dbs = NULL;
  GPtrArray *names;

  g_autoptr(GPtrArray) dbs1 = NULL;

  if (!fs_diff_resolve_time(fs, where->entry, &t1, &is_lasting, error) ||
      !fs_diff_resolve_time(fs, where->to, &t2, &is_lasting, error))
    return NULL;
  dbs = fs_pitr_list_dbs(fs->pitr, t2, error);
  if (dbs == NULL)
    return NULL;
  dbs1 = fs_pitr_list_dbs(fs->pitr, t1, error);
  if (dbs1 == NULL)
    return NULL;
  names = g_ptr_array_new_with_free_func(g_free);
  /* Only the files that open: the two times in order, and the databases
   * that have a state at both. */
  for (guint i = 0; t1 <= t2 && i < dbs->len; i++) {
    gboolean at_t1 = FALSE;
    for (guint k = 0; k < dbs1->len && !at_t1; k++)
      at_t1 = g_str_equal(g_ptr_array_index(dbs1, k), g_ptr_array_index(dbs, i));
    if (!at_t1)
      continue;
    g_ptr_array_add(names, g_strconcat(g_ptr_array_index(dbs, i), ".sql", NULL));
    g_ptr_array_add(names, g_strconcat(g_ptr_array_index(dbs, i), ".summary", NULL));
  }
  return names;
}

/* The largest document the mount makes (tests make it smaller). */
#define DOC_MAX_BYTES ((gsize)32 << 20)

static gsize
doc_max_bytes(void)
{
  guint t = sqlenvfs_testhook_diff_doc_max();
  return t > 0 ? MIN((gsize)t, DOC_MAX_BYTES) : DOC_MAX_BYTES;
}

typedef struct {
  GString *out;
  gboolean too_big; /* doc_max_bytes() reached: the rest is dropped */
} DocOut;

static void
append(gpointer user, const char *text, gsize len)
{
  DocOut *d = user;
  if (d->too_big || d->out->len + len > doc_max_bytes()) {
    d->too_big = TRUE;
    return;
  }
  g_string_append_len(d->out, text, (gssize) len);
}

static void
note(gpointer user, const char *message)
{
  (void) user;
  g_info("diff: %s", message);
}

#define DOCS_MAX 8
#define DOCS_MAX_BYTES ((gsize)64 << 20)

typedef struct {
  char *db;
  gboolean is_summary;
  gint64 from_us, to_us;
  GBytes *doc; /* empty when refused as too large (is_too_big) */
  gboolean is_too_big;
} DiffDoc;

struct _FsDiffCache {
  GMutex making; /* held while a document is made: one at a time */
  GMutex lock;
  GQueue docs; /* DiffDoc *, the last used first */
  gsize bytes;
};

static void
diff_doc_free(gpointer p)
{
  DiffDoc *d = p;
  g_free(d->db);
  g_bytes_unref(d->doc);
  g_free(d);
}

FsDiffCache *
fs_diff_cache_new(void)
{
  FsDiffCache *c = g_new0(FsDiffCache, 1);
  g_mutex_init(&c->making);
  g_mutex_init(&c->lock);
  g_queue_init(&c->docs);
  return c;
}

void
fs_diff_cache_free(FsDiffCache *c)
{
  if (c == NULL)
    return;
  g_queue_clear_full(&c->docs, diff_doc_free);
  g_mutex_clear(&c->making);
  g_mutex_clear(&c->lock);
  g_free(c);
}

/* The kept document for the key, referenced, or NULL (and *@too_big when
 * it was refused as too large). Called locked. */
static GBytes *
find_locked(FsDiffCache *c, const char *db, gboolean is_summary, gint64 from_us, gint64 to_us,
            gboolean *too_big)
{
  *too_big = FALSE;
  for (GList *l = c->docs.head; l != NULL; l = l->next) {
    DiffDoc *d = l->data;
    if (d->is_summary == is_summary && d->from_us == from_us && d->to_us == to_us &&
        strcmp(d->db, db) == 0) {
      g_queue_unlink(&c->docs, l);
      g_queue_push_head_link(&c->docs, l);
      *too_big = d->is_too_big;
      return d->is_too_big ? NULL : g_bytes_ref(d->doc);
    }
  }
  return NULL;
}

static void
set_too_big(GError **error, const char *db, gboolean is_summary, gint64 from_us, gint64 to_us)
{
  g_autofree char *from = sqlenvfs_time_format_iso(from_us);
  g_autofree char *to = sqlenvfs_time_format_iso(to_us);
  g_set_error(error, SQLENVFS_ERROR, SQLENVFS_ERROR_REFUSED,
              "the %s of %s from %s to %s is larger than %" G_GSIZE_FORMAT " bytes, more than "
              "the mount makes in memory: write it with `sqlenvfs diff --db %s --from %s --to "
              "%s%s > FILE`", is_summary ? "summary" : "script", db, from, to, doc_max_bytes(),
              db, from, to, is_summary ? " --summary" : "");
}

GBytes *
fs_diff_document(Fs *fs, const char *db, gboolean is_summary, gint64 from_us, gint64 to_us,
                 GError **error)
{
  FsDiffCache *c = fs->diffs;
  SqlenvfsTime from = { .us = from_us }, to = { .us = to_us };
  DocOut out = { NULL, FALSE };
  gboolean too_big;
  GBytes *doc;

  g_mutex_lock(&c->lock);
  doc = find_locked(c, db, is_summary, from_us, to_us, &too_big);
  g_mutex_unlock(&c->lock);
  if (doc != NULL || too_big) {
    if (too_big)
      set_too_big(error, db, is_summary, from_us, to_us);
    return doc;
  }
  /* One made at a time (the cache's lock is not held meanwhile: documents
   * already made are served while one is made). */
  g_mutex_lock(&c->making);
  g_mutex_lock(&c->lock);
  doc = find_locked(c, db, is_summary, from_us, to_us, &too_big); /* made meanwhile */
  g_mutex_unlock(&c->lock);
  if (doc != NULL || too_big) {
    g_mutex_unlock(&c->making);
    if (too_big)
      set_too_big(error, db, is_summary, from_us, to_us);
    return doc;
  }
  out.out = g_string_new(NULL);
  if (!sqlenvfs_diff_run(fs->root, db, &from, &to, is_summary, append, note, &out, NULL,
                         error)) {
    g_mutex_unlock(&c->making);
    g_string_free(out.out, TRUE);
    return NULL;
  }
  g_mutex_unlock(&c->making);
  if (out.too_big) {
    g_string_free(out.out, TRUE);
    set_too_big(error, db, is_summary, from_us, to_us);
    doc = NULL;
  } else {
    doc = g_string_free_to_bytes(out.out);
  }
  g_mutex_lock(&c->lock);
  {
    DiffDoc *d = g_new0(DiffDoc, 1);
    d->db = g_strdup(db);
    d->is_summary = is_summary;
    d->from_us = from_us;
    d->to_us = to_us;
    d->is_too_big = doc == NULL;
    d->doc = doc != NULL ? g_bytes_ref(doc) : g_bytes_new(NULL, 0);
    g_queue_push_head(&c->docs, d);
    c->bytes += g_bytes_get_size(d->doc);
  }
  while (c->docs.length > DOCS_MAX || c->bytes > DOCS_MAX_BYTES) {
    DiffDoc *old = g_queue_pop_tail(&c->docs);
    c->bytes -= g_bytes_get_size(old->doc);
    diff_doc_free(old);
  }
  g_mutex_unlock(&c->lock);
  return doc;
}

GBytes *
fs_diff_render(Fs *fs, const FsWhere *where, GError **error)
{
  gint64 from_us, to_us;
  gboolean is_lasting;

  if (!fs_diff_resolve_time(fs, where->entry, &from_us, &is_lasting, error) ||
      !fs_diff_resolve_time(fs, where->to, &to_us, &is_lasting, error))
    return NULL;
  return fs_diff_document(fs, where->db, where->is_summary, from_us, to_us, error);
}
