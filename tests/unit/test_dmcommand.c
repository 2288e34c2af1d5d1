/* Unit tests for the parsers of the xenstore dm-command protocol
 * (xenstore/dmcommand.c): what libxl writes, and what it never would. The
 * protocol itself is exercised against a real xenstored by the integration
 * tests. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <string.h>

#include "../../xenstore/dmcommand.h"

static void test_host_addr(void **state)
{
    struct pci_host_addr h;
    const char *end;

    assert_int_equal(pci_host_addr_parse("0000:03:1f.7", &h, &end), 0);
    assert_int_equal(h.seg, 0);
    assert_int_equal(h.bus, 3);
    assert_int_equal(h.dev, 0x1f);
    assert_int_equal(h.fn, 7);
    assert_int_equal(*end, '\0');
    assert_int_equal(pci_host_addr_parse("ABCD:FF:00.0", &h, NULL), 0);
    assert_int_equal(h.seg, 0xabcd);
    assert_int_equal(h.bus, 0xff);

    static const char *const bad[] = {
        "", "0000:03:00", "0000:03:20.0", "0000:03:00.8", "000:03:00.0",
        "0000-03-00.0", "0000:3:00.0", "0000:03:0.0", "g000:03:00.0",
        "0000:03:00.x", " 0000:03:00.0", "0000:03:00:0",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(pci_host_addr_parse(bad[i], &h, NULL), -EINVAL);
}

static void test_insert_request(void **state)
{
    struct pci_insert_request r;

    /* What libxl 4.17 writes (libxl_pci.c). */
    assert_int_equal(pci_insert_request_parse(
                         "0000:03:00.0@28,msitranslate=0,power_mgmt=1", &r), 0);
    assert_true(r.has_vdevfn);
    assert_int_equal(r.vdevfn, 0x28);
    assert_false(r.msitranslate);
    assert_true(r.power_mgmt);
    assert_int_equal(pci_insert_request_parse(
                         "0000:04:02.1,msitranslate=1,power_mgmt=0", &r), 0);
    assert_false(r.has_vdevfn);
    assert_true(r.msitranslate);
    assert_int_equal(r.host.dev, 2);
    assert_int_equal(pci_insert_request_parse("0000:04:02.1", &r), 0);
    assert_int_equal(pci_insert_request_parse("0000:04:02.1,permissive=1", &r),
                     0);
    assert_true(r.permissive);

    static const char *const bad[] = {
        "0000:04:02.1@", "0000:04:02.1@123", "0000:04:02.1@zz",
        "0000:04:02.1,", "0000:04:02.1,msitranslate", "0000:04:02.1,msitranslate=2",
        "0000:04:02.1,msitranslate=01", "0000:04:02.1,bogus=1",
        "0000:04:02.1 ,power_mgmt=1", "0000:04:02.1;power_mgmt=1", "garbage",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(pci_insert_request_parse(bad[i], &r), -EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_host_addr),
        cmocka_unit_test(test_insert_request),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
