#ifndef CPKCS11_H
#define CPKCS11_H
// The few PKCS#11 calls the gateway makes, as plain C over a module loaded by path: an HMAC-SHA256
// under a secret key that never leaves the token, finding those keys by label, and making or
// importing one as non-extractable. Every call may block (a network HSM answers over the wire):
// Swift calls them from threads of their own, never from an event loop.
#include <stddef.h>

typedef struct cpkcs11_token cpkcs11_token;

/// Loads the module at `path` (dlopen), initialises it, finds the token (`slot_label` names the
/// token's label; when it is NULL, `slot_id` is the slot's number), opens a session and logs in as
/// the user with `pin`. Returns NULL and writes a reason (no secret) to `error` on failure.
cpkcs11_token *cpkcs11_open(const char *path, const char *slot_label, unsigned long slot_id,
                            const char *pin, size_t pin_length, char *error, size_t error_size);

/// Closes its sessions (the token logs the process out when its last session closes), and
/// finalises the module when no other token of the process uses it.
void cpkcs11_close(cpkcs11_token *token);

/// The secret keys labelled `label` that can sign: their handles and CKA_ID values (each at most
/// 32 bytes, written to ids[i * 32 ...], its length to id_lengths[i]). Returns how many were found
/// (at most `capacity`), or -1 with a reason in `error`.
long cpkcs11_find_keys(cpkcs11_token *token, const char *label, unsigned long *handles, unsigned char *ids,
                       size_t *id_lengths, size_t capacity, char *error, size_t error_size);

/// HMAC-SHA256 of `message` under the key `handle`, computed inside the token, into `mac` (32 bytes).
/// Returns 0, or the PKCS#11 return value with a reason in `error`. Safe from several threads:
/// each call takes a session of its own.
unsigned long cpkcs11_hmac_sha256(cpkcs11_token *token, unsigned long handle, const unsigned char *message,
                                  size_t message_length, unsigned char *mac, char *error, size_t error_size);

/// Drops every session and logs in again (the token lost the login: a network HSM failed over, a
/// session timed out). Returns 0 or the PKCS#11 return value with a reason in `error`.
unsigned long cpkcs11_relogin(cpkcs11_token *token, char *error, size_t error_size);

/// Makes a new 32-byte secret key in the token (sensitive, never extractable, HMAC-SHA256 only),
/// labelled `label` with CKA_ID `id`; its handle in `handle`. Returns 0 or the PKCS#11 return value.
unsigned long cpkcs11_generate_key(cpkcs11_token *token, const char *label, const unsigned char *id, size_t id_length,
                                   unsigned long *handle, char *error, size_t error_size);

/// Imports `value` as such a key (sensitive, never extractable from then on): for a key made
/// outside the token and backed up as shares before it was imported.
unsigned long cpkcs11_import_key(cpkcs11_token *token, const char *label, const unsigned char *id, size_t id_length,
                                 const unsigned char *value, size_t value_length, unsigned long *handle,
                                 char *error, size_t error_size);

/// Destroys the key `handle` in the token (a retired version no stored value names any more).
/// Returns 0 or the PKCS#11 return value with a reason in `error`.
unsigned long cpkcs11_destroy_key(cpkcs11_token *token, unsigned long handle, char *error, size_t error_size);
#endif
