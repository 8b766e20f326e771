/* A stand-in for libcurl-gnutls.so.4 in the image: Debian's rauc links libcurl for
 * installing bundles from http(s) URLs, which the appliance never does (the update agent
 * installs local files only), and the real library would bring ~10 MB of TLS, Kerberos
 * and LDAP libraries into a 20 MiB image. Every transfer fails with "unsupported
 * protocol"; nothing else in rauc calls curl. Built by image/install-rauc.sh (image/stubs/README). */
#include <stddef.h>

typedef int CURLcode;
#define CURLE_OK 0
#define CURLE_UNSUPPORTED_PROTOCOL 1
#define CURLE_FAILED_INIT 2

CURLcode curl_global_init(long flags) { (void)flags; return CURLE_OK; }
void *curl_easy_init(void) { return NULL; }
CURLcode curl_easy_setopt(void *curl, int option, ...) { (void)curl; (void)option; return CURLE_FAILED_INIT; }
CURLcode curl_easy_perform(void *curl) { (void)curl; return CURLE_UNSUPPORTED_PROTOCOL; }
void curl_easy_cleanup(void *curl) { (void)curl; }
const char *curl_easy_strerror(CURLcode code)
{
    (void)code;
    return "this appliance installs local bundles only (no http(s) downloads)";
}
