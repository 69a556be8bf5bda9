/* names.h -- the rules for room and user names.
 *
 * Room and user names become parts of Redis keys and MQTT topic levels, so
 * they are checked in one place: 1 to 64 bytes of valid UTF-8, no control
 * characters (C0, DEL, C1), none of  space : { } , / + # * ? [ ]  .
 * A user name may also not be all digits (it would collide with message ids
 * in the user's hash) nor "messages" (the room's counter key). A room name
 * may not start with '$': <prefix>/$... topics are the bridge's own (the
 * status documents, the rooms of a user), and so are P:$... keys. */
#ifndef CB_NAMES_H
#define CB_NAMES_H

#include <stddef.h>

#define NAME_MAX_BYTES 64

/* 1 when s[0..len) is a valid room name, 0 otherwise. */
int name_valid_room(const char *s, size_t len);

/* 1 when s[0..len) is a valid user name, 0 otherwise. */
int name_valid_user(const char *s, size_t len);

/* 1 when s[0..len) is valid UTF-8 (no overlongs, no surrogates, <= U+10FFFF). */
int name_utf8_valid(const char *s, size_t len);

#endif
