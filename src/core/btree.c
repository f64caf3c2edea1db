/*
 * btree.c — SQLite b-tree pages, cells, varints and records read by hand
 * (btree.h has the layout and the invariants).
 */
#include "sqlenvfs/btree.h"

#include <string.h>

#include "sqlenvfs/error.h"

static guint
get_u16(const guint8 *p)
{
  return ((guint) p[0] << 8) | p[1];
}

guint
sqlenvfs_btree_varint(const guint8 *p, gsize avail, guint64 *out)
{
  guint64 v = 0;

  for (guint i = 0; i < 8; i++) {
    if (i >= avail)
      return 0;
    v = (v << 7) | (p[i] & 0x7f);
    if (!(p[i] & 0x80)) {
      *out = v;
      return i + 1;
    }
  }
  if (avail < 9)
    return 0;
  *out = (v << 8) | p[8];
  return 9;
}

static gboolean
bad_page(GError **error, guint32 pgno, const char *what)
{
  g_set_error(error, SQLENVFS_ERROR, SQLENVFS_ERROR_INTEGRITY,
              "b-tree page %u is damaged: %s; check the database with `sqlenvfs verify`", pgno,
              what);
  return FALSE;
}

gboolean
sqlenvfs_btree_page_parse(const guint8 *data, guint32 page_size, guint32 usable, guint32 pgno,
                          SqlenvfsBtreePage *out, GError **error)
{
  guint hdr = pgno == 1 ? 100 : 0;
  guint hdr_size;

  g_return_val_if_fail(data != NULL && out != NULL, FALSE);
  if (usable < 480 || usable > page_size)
    return bad_page(error, pgno, "the usable page size is impossible");
  if (hdr + 8 > usable)
    return bad_page(error, pgno, "the page is too small for its header");
  memset(out, 0, sizeof *out);
  out->data = data;
  out->page_size = page_size;
  out->usable = usable;
  out->pgno = pgno;
  out->hdr = hdr;
  switch (data[hdr]) {
  case SQLENVFS_BTREE_INDEX_INTERIOR:
  case SQLENVFS_BTREE_TABLE_INTERIOR:
    hdr_size = 12;
    break;
  case SQLENVFS_BTREE_INDEX_LEAF:
  case SQLENVFS_BTREE_TABLE_LEAF:
    hdr_size = 8;
    break;
  default:
    return bad_page(error, pgno, "its type byte is not a b-tree page type");
  }
  out->type = data[hdr];
  out->n_cells = get_u16(data + hdr + 3);
  if (hdr + hdr_size + 2 * (gsize) out->n_cells > usable)
    return bad_page(error, pgno, "its cell pointer array runs past the page");
  if (hdr_size == 12) {
    out->right_child = sqlenvfs_be32(data + hdr + 8);
    if (out->right_child == 0)
      return bad_page(error, pgno, "its right-most child is page 0");
  }
  return TRUE;
}

guint32
sqlenvfs_btree_local_size(SqlenvfsBtreePageType type, guint32 usable, guint64 payload_size)
{
  guint64 x, m, k;

  if (type == SQLENVFS_BTREE_TABLE_LEAF || type == SQLENVFS_BTREE_TABLE_INTERIOR)
    x = usable - 35;
  else
    x = ((guint64) (usable - 12) * 64 / 255) - 23;
  if (payload_size <= x)
    return (guint32) payload_size;
  m = ((guint64) (usable - 12) * 32 / 255) - 23;
  k = m + ((payload_size - m) % (usable - 4));
  return (guint32) (k <= x ? k : m);
}

gboolean
sqlenvfs_btree_cell(const SqlenvfsBtreePage *page, guint i, SqlenvfsBtreeCell *out,
                    GError **error)
{
  guint hdr_size = (page->type == SQLENVFS_BTREE_TABLE_LEAF ||
                    page->type == SQLENVFS_BTREE_INDEX_LEAF) ? 8 : 12;
  const guint8 *d = page->data;
  guint off, n;
  guint64 v;
  g_autofree char *what = NULL;

  g_return_val_if_fail(i < page->n_cells, FALSE);
  memset(out, 0, sizeof *out);
  off = get_u16(d + page->hdr + hdr_size + 2 * i);
  if (off < page->hdr + hdr_size + 2 * page->n_cells || off >= page->usable)
    goto bad;
  if (page->type == SQLENVFS_BTREE_INDEX_INTERIOR || page->type == SQLENVFS_BTREE_TABLE_INTERIOR) {
    if (off + 4 > page->usable)
      goto bad;
    out->child = sqlenvfs_be32(d + off);
    if (out->child == 0)
      goto bad;
    off += 4;
  }
  if (page->type == SQLENVFS_BTREE_TABLE_INTERIOR) {
    n = sqlenvfs_btree_varint(d + off, page->usable - off, &v);
    if (n == 0)
      goto bad;
    out->rowid = (gint64) v;
    return TRUE;
  }
  n = sqlenvfs_btree_varint(d + off, page->usable - off, &out->payload_size);
  if (n == 0)
    goto bad;
  off += n;
  if (page->type == SQLENVFS_BTREE_TABLE_LEAF) {
    n = sqlenvfs_btree_varint(d + off, page->usable - off, &v);
    if (n == 0)
      goto bad;
    out->rowid = (gint64) v;
    off += n;
  }
  out->n_local = sqlenvfs_btree_local_size(page->type, page->usable, out->payload_size);
  if ((guint64) off + out->n_local > page->usable)
    goto bad;
  out->local = d + off;
  if (out->n_local < out->payload_size) {
    if ((guint64) off + out->n_local + 4 > page->usable)
      goto bad;
    out->overflow = sqlenvfs_be32(d + off + out->n_local);
    if (out->overflow == 0)
      goto bad;
  }
  return TRUE;

bad:
  what = g_strdup_printf("cell %u does not fit in the page", i);
  return bad_page(error, page->pgno, what);
}

gboolean
sqlenvfs_btree_record_bind(const guint8 *rec, gsize len, guint n_fields, sqlite3_stmt *st,
                           int first, const char *what, GError **error)
{
  return sqlenvfs_btree_record_bind_enc(rec, len, n_fields, SQLITE_UTF8, st, first, what, error);
}

gboolean
sqlenvfs_btree_record_bind_enc(const guint8 *rec, gsize len, guint n_fields, int enc,
                               sqlite3_stmt *st, int first, const char *what, GError **error)
{
  guint64 hdr_len, type;
  gsize hp, body;
  guint n;

  n = sqlenvfs_btree_varint(rec, len, &hdr_len);
  if (n == 0 || hdr_len > len || hdr_len < n)
    goto bad;
  hp = n;
  body = (gsize) hdr_len;
  for (guint f = 0; f < n_fields; f++) {
    int param = first + (int) f;
    gsize size;

    if (hp >= hdr_len)
      goto bad;
    n = sqlenvfs_btree_varint(rec + hp, (gsize) hdr_len - hp, &type);
    if (n == 0)
      goto bad;
    hp += n;
    if (type <= 6)
      size = (gsize[]){ 0, 1, 2, 3, 4, 6, 8 }[type];
    else if (type == 7)
      size = 8;
    else if (type == 8 || type == 9)
      size = 0;
    else if (type >= 12)
      size = (gsize) ((type - 12) / 2);
    else
      goto bad; /* 10, 11: reserved */
    if (size > len || body > len - size)
      goto bad;
    if (type == 0) {
      sqlite3_bind_null(st, param);
    } else if (type <= 6) {
      guint64 u = rec[body] & 0x80 ? G_MAXUINT64 : 0; /* sign-extend */
      for (gsize k = 0; k < size; k++)
        u = (u << 8) | rec[body + k];
      sqlite3_bind_int64(st, param, (sqlite3_int64) u);
    } else if (type == 7) {
      guint64 u = 0;
      double dv;
      for (gsize k = 0; k < 8; k++)
        u = (u << 8) | rec[body + k];
      memcpy(&dv, &u, sizeof dv);
      sqlite3_bind_double(st, param, dv);
    } else if (type == 8 || type == 9) {
      sqlite3_bind_int(st, param, type == 9);
    } else if (type % 2 == 0) {
      sqlite3_bind_blob64(st, param, rec + body, size, SQLITE_TRANSIENT);
    } else {
      sqlite3_bind_text64(st, param, (const char *) rec + body, size, SQLITE_TRANSIENT,
                          (unsigned char) enc);
    }
    body += size;
  }
  return TRUE;

bad:
  g_set_error(error, SQLENVFS_ERROR, SQLENVFS_ERROR_INTEGRITY,
              "a record of %s is damaged (its header or a field runs past its %" G_GSIZE_FORMAT
              " bytes); check the database with `sqlenvfs verify`",
              what, len);
  return FALSE;
}
