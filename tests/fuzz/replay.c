/* fuzz-replay: runs the x86emu fuzz entry point over saved inputs.
 *
 *   fuzz-replay PATH...
 *
 * Each PATH is a file or a folder (every regular file in it, in name
 * order). Built with the normal compiler and flags, so `make check` replays
 * tests/fuzz/regressions/ (every crash the fuzzer ever found) and the seed
 * corpus, under ASan/UBSan in a sanitizer build. A finding crashes or
 * aborts; otherwise it prints how many inputs ran and exits 0. */
#include <dirent.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define REPLAY_MAX_INPUT (1u << 20)

static int replay_file(const char *path)
{
    static uint8_t buf[REPLAY_MAX_INPUT];
    FILE *f = fopen(path, "rb");
    size_t n;
    int rc = 0;

    if (!f) {
        fprintf(stderr, "fuzz-replay: %s: %s\n", path, strerror(errno));
        return -errno;
    }
    n = fread(buf, 1, sizeof(buf), f);
    if (ferror(f)) {
        fprintf(stderr, "fuzz-replay: %s: read error\n", path);
        rc = -EIO;
        goto out;
    }
    LLVMFuzzerTestOneInput(buf, n);
out:
    fclose(f);
    return rc;
}

static int name_cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Replays every regular file of dir in name order; returns the count or
 * a negative errno. */
static int replay_dir(const char *dir)
{
    struct dirent *de;
    char **names = NULL;
    size_t count = 0, cap = 0;
    int rc = 0, replayed = 0;
    DIR *d = opendir(dir);

    if (!d) {
        fprintf(stderr, "fuzz-replay: %s: %s\n", dir, strerror(errno));
        return -errno;
    }
    while ((de = readdir(d))) {
        if (de->d_name[0] == '.')
            continue;
        if (count == cap) {
            char **grown;

            cap = cap ? cap * 2 : 64;
            grown = realloc(names, cap * sizeof(*names));
            if (!grown) {
                rc = -ENOMEM;
                goto out;
            }
            names = grown;
        }
        if (asprintf(&names[count], "%s/%s", dir, de->d_name) < 0) {
            rc = -ENOMEM;
            goto out;
        }
        count++;
    }
    if (count)
        qsort(names, count, sizeof(*names), name_cmp);
    for (size_t i = 0; i < count; i++) {
        struct stat st;

        if (stat(names[i], &st) < 0 || !S_ISREG(st.st_mode))
            continue;
        rc = replay_file(names[i]);
        if (rc < 0)
            goto out;
        replayed++;
    }
    rc = replayed;
out:
    for (size_t i = 0; i < count; i++)
        free(names[i]);
    free(names);
    closedir(d);
    return rc;
}

int main(int argc, char **argv)
{
    int total = 0;

    if (argc < 2) {
        fprintf(stderr, "usage: fuzz-replay FILE|DIR...\n");
        return 2;
    }
    for (int i = 1; i < argc; i++) {
        struct stat st;
        int rc;

        if (stat(argv[i], &st) < 0) {
            fprintf(stderr, "fuzz-replay: %s: %s\n", argv[i], strerror(errno));
            return 1;
        }
        rc = S_ISDIR(st.st_mode) ? replay_dir(argv[i]) : replay_file(argv[i]);
        if (rc < 0)
            return 1;
        total += S_ISDIR(st.st_mode) ? rc : 1;
    }
    printf("fuzz-replay: %d inputs replayed, no finding\n", total);
    return 0;
}
