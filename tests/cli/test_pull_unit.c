/* test_pull_unit.c: cli/pull/'s pure parts: the digests against FIPS 180-2
 * test vectors and git's own blob ids, fed in pieces as a download feeds
 * them; which listed paths may be joined under the models folder. */
#include <string.h>

#include "pull_internal.h"
#include "test_util.h"

static void hash(const char *const *parts, int64_t git_size, char sha256[65], char sha1[41])
{
    digest d;
    CHECK(digest_init(&d, git_size) == VKI_OK);
    for (; *parts; parts++) digest_update(&d, *parts, strlen(*parts));
    digest_final(&d, sha256, sha1);
    digest_deinit(&d);
}

static void test_digests(void)
{
    char s256[65], s1[41];
    /* FIPS 180-2, appendix B.1 and B.2 (the second in pieces across its block boundary). */
    hash((const char *const[]){"abc", NULL}, -1, s256, s1);
    CHECK(!strcmp(s256, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"));
    CHECK(s1[0] == '\0');
    hash((const char *const[]){"abcdbcdecdefdefgefghfghighij", "hijkijkljklmklmnlmnomnopnopq", NULL}, -1, s256, s1);
    CHECK(!strcmp(s256, "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"));
    hash((const char *const[]){NULL}, -1, s256, s1);
    CHECK(!strcmp(s256, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"));
    /* git hash-object: "hello\n" and the empty blob. */
    hash((const char *const[]){"hel", "lo\n", NULL}, 6, s256, s1);
    CHECK(!strcmp(s1, "ce013625030ba8dba906f756967f9e9ca394464a"));
    hash((const char *const[]){NULL}, 0, s256, s1);
    CHECK(!strcmp(s1, "e69de29bb2d1d6434b8b29ae775ad8c2e48c5391"));
    CHECK(digest_is_hex("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad", 32));
    CHECK(!digest_is_hex("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015a", 32));
    CHECK(!digest_is_hex("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015adz", 32));
    CHECK(!digest_is_hex("", 20));
}

static void test_paths(void)
{
    static const char *const ok[] = {"model.gguf", "sub/model.gguf", "a/b/c.safetensors", "..x", "x..", ".hidden"};
    static const char *const bad[] = {"", "/etc/passwd", "../x", "a/../../x", "a/..", "./x", "a//b", "a/", "a\\b",
                                      "a\nb", "..", "."};
    for (size_t i = 0; i < sizeof ok / sizeof *ok; i++) CHECKF(hub_safe_path(ok[i]), "%s", ok[i]);
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) CHECKF(!hub_safe_path(bad[i]), "'%s'", bad[i]);
    CHECK(pull_is_remote("hf://a/b") && pull_is_remote("https://x/y.gguf") && pull_is_remote("http://x/y"));
    CHECK(!pull_is_remote("models/x.gguf") && !pull_is_remote("/abs/hf://x") && !pull_is_remote("ftp://x/y"));
}

int main(void)
{
    test_digests();
    test_paths();
    return test_finish("test_pull_unit");
}
