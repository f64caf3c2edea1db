/*
 * compress_pages.c — measure zstd and lz4 on the page images an archive
 * stores: compression ratio and time per page, per record (all the pages of
 * one commit) and per batch of several commits, against the version 1
 * record size.
 *
 *   cc -O2 -o compress_pages compress_pages.c -lzstd -llz4
 *   compress_pages wal FILE.wal     every commit of a WAL (text_rows.py --keep-wal)
 *   compress_pages db FILE.db       every page of a database file, one per record
 *
 * A record in version 1 costs 96 (header) + 8 (trailer) + 4 per page (its
 * number) + the page images, plus a 112-byte index entry. The "archive bytes
 * per commit" columns add the same fixed costs to the compressed size.
 */
#define _GNU_SOURCE
#include <lz4.h>
#include <lz4hc.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <zstd.h>

#define FIXED_V1 (96 + 8 + 112)

typedef struct {
  unsigned n;      /* pages */
  unsigned char *data;
} Rec;

static double
now(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec / 1e9;
}

static uint32_t
be32(const unsigned char *p)
{
  return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static unsigned char *
slurp(const char *path, size_t *len)
{
  FILE *f = fopen(path, "rb");
  unsigned char *buf;
  if (!f) {
    perror(path);
    exit(1);
  }
  fseek(f, 0, SEEK_END);
  *len = (size_t)ftell(f);
  fseek(f, 0, SEEK_SET);
  buf = malloc(*len ? *len : 1);
  if (fread(buf, 1, *len, f) != *len) {
    perror(path);
    exit(1);
  }
  fclose(f);
  return buf;
}

/* Group the frames of a WAL by commit; each record holds the last version of
 * each page the commit wrote. */
static Rec *
load_wal(const char *path, unsigned *n_recs, unsigned *ps_out)
{
  size_t len;
  unsigned char *w = slurp(path, &len);
  unsigned ps = be32(w + 8), cap = 1024, nr = 0;
  Rec *recs = malloc(cap * sizeof *recs);
  unsigned char *cur = NULL;
  uint32_t *pg = NULL;
  unsigned n = 0, ncap = 0;
  size_t off = 32;

  while (off + 24 + ps <= len) {
    uint32_t pgno = be32(w + off), commit = be32(w + off + 4);
    unsigned k;
    for (k = 0; k < n && pg[k] != pgno; k++)
      ;
    if (k == n) {
      if (n == ncap) {
        ncap = ncap ? 2 * ncap : 16;
        pg = realloc(pg, ncap * sizeof *pg);
        cur = realloc(cur, (size_t)ncap * ps);
      }
      pg[n++] = pgno;
    }
    memcpy(cur + (size_t)k * ps, w + off + 24, ps);
    off += 24 + ps;
    if (commit) {
      if (nr == cap)
        recs = realloc(recs, (cap *= 2) * sizeof *recs);
      recs[nr].n = n;
      recs[nr].data = malloc((size_t)n * ps);
      memcpy(recs[nr].data, cur, (size_t)n * ps);
      nr++;
      n = 0;
    }
  }
  free(w);
  free(cur);
  free(pg);
  *n_recs = nr;
  *ps_out = ps;
  return recs;
}

static Rec *
load_db(const char *path, unsigned *n_recs, unsigned *ps_out)
{
  size_t len;
  unsigned char *d = slurp(path, &len);
  unsigned ps = (unsigned)d[16] << 8 | d[17];
  unsigned nr;
  Rec *recs;
  if (ps == 1)
    ps = 65536;
  nr = (unsigned)(len / ps);
  recs = malloc(nr * sizeof *recs);
  for (unsigned i = 0; i < nr; i++) {
    recs[i].n = 1;
    recs[i].data = malloc(ps);
    memcpy(recs[i].data, d + (size_t)i * ps, ps);
  }
  free(d);
  *n_recs = nr;
  *ps_out = ps;
  return recs;
}

typedef enum { ZSTD1, ZSTD3, ZSTD_NEG1, LZ4, LZ4HC } Codec;
static const char *names[] = { "zstd -1", "zstd -3", "zstd --fast=1", "lz4", "lz4hc -9" };

static size_t
compress(Codec c, ZSTD_CCtx *cc, void *dst, size_t cap, const void *src, size_t n)
{
  switch (c) {
  case ZSTD1:
    return ZSTD_compressCCtx(cc, dst, cap, src, n, 1);
  case ZSTD3:
    return ZSTD_compressCCtx(cc, dst, cap, src, n, 3);
  case ZSTD_NEG1:
    return ZSTD_compressCCtx(cc, dst, cap, src, n, -1);
  case LZ4:
    return (size_t)LZ4_compress_default(src, dst, (int)n, (int)cap);
  case LZ4HC:
    return (size_t)LZ4_compress_HC(src, dst, (int)n, (int)cap, 9);
  }
  return 0;
}

static size_t
decompress(Codec c, ZSTD_DCtx *dc, void *dst, size_t cap, const void *src, size_t n)
{
  if (c == LZ4 || c == LZ4HC)
    return (size_t)LZ4_decompress_safe(src, dst, (int)n, (int)cap);
  return ZSTD_decompressDCtx(dc, dst, cap, src, n);
}

/* Compress the records @batch commits at a time (1: one record per commit);
 * print bytes per commit (with the fixed costs of a record: the header and
 * trailer once per batch; each is run twice, the first run warming caches,
 * and only the second is printed, 4 bytes per page number and 112 bytes of index per
 * commit, as a batch keeps each commit's restore point) and times per page. */
static void
run(Rec *recs, unsigned nr, unsigned ps, Codec c, unsigned batch, double v1_per_commit,
    int report)
{
  ZSTD_CCtx *cc = ZSTD_createCCtx();
  ZSTD_DCtx *dc = ZSTD_createDCtx();
  size_t cap = 0, stored = 0, pages = 0, fixed = 0;
  unsigned char *in = NULL, *out = NULL, *back = NULL;
  double tc = 0, td = 0;

  for (unsigned i = 0; i < nr; i += batch) {
    size_t n = 0, z;
    unsigned np = 0, nb = 0;
    for (unsigned j = i; j < nr && j < i + batch; j++, nb++)
      np += recs[j].n;
    if ((size_t)np * ps > cap) {
      cap = (size_t)np * ps;
      in = realloc(in, cap);
      back = realloc(back, cap);
      out = realloc(out, ZSTD_compressBound(cap) + LZ4_compressBound((int)cap));
    }
    for (unsigned j = i; j < i + nb; j++) {
      memcpy(in + n, recs[j].data, (size_t)recs[j].n * ps);
      n += (size_t)recs[j].n * ps;
    }
    double t0 = now();
    z = compress(c, cc, out, ZSTD_compressBound(cap) + LZ4_compressBound((int)cap), in, n);
    double t1 = now();
    if (decompress(c, dc, back, cap, out, z) != n || memcmp(back, in, n) != 0) {
      fprintf(stderr, "%s: round trip failed\n", names[c]);
      exit(1);
    }
    td += now() - t1;
    tc += t1 - t0;
    stored += z < n ? z : n;
    pages += np;
    fixed += 96 + 8 + 8 /* block entry */ + 4 * (size_t)np + 112 * (size_t)nb;
  }
  double per_commit = (double)(stored + fixed) / nr;
  if (report)
    printf("%-14s batch %-4u  pages %5.2fx  archive %7.0f B/commit (%5.2fx smaller than v1)"
         "  compress %6.2f us/page  decompress %5.2f us/page\n",
         names[c], batch, (double)pages * ps / (double)stored, per_commit,
         v1_per_commit / per_commit, tc * 1e6 / pages, td * 1e6 / pages);
  ZSTD_freeCCtx(cc);
  ZSTD_freeDCtx(dc);
  free(in);
  free(out);
  free(back);
}

int
main(int argc, char **argv)
{
  unsigned nr, ps;
  Rec *recs;
  size_t pages = 0;
  double v1;
  static const unsigned batches[] = { 1, 8, 64 };

  if (argc != 3 || (strcmp(argv[1], "wal") != 0 && strcmp(argv[1], "db") != 0)) {
    fprintf(stderr, "usage: %s wal FILE.wal | db FILE.db\n", argv[0]);
    return 2;
  }
  recs = strcmp(argv[1], "wal") == 0 ? load_wal(argv[2], &nr, &ps) : load_db(argv[2], &nr, &ps);
  for (unsigned i = 0; i < nr; i++)
    pages += recs[i].n;
  v1 = (double)(nr * (size_t)FIXED_V1 + pages * (4 + (size_t)ps)) / nr;
  printf("%s: %u records, %zu pages of %u bytes (%.2f pages per record); version 1: %.0f "
         "B/commit\n", argv[2], nr, pages, ps, (double)pages / nr, v1);
  for (unsigned b = 0; b < sizeof batches / sizeof *batches; b++)
    for (Codec c = ZSTD1; c <= LZ4HC; c++)
      run(recs, nr, ps, c, batches[b], v1, 0), run(recs, nr, ps, c, batches[b], v1, 1);
  return 0;
}
