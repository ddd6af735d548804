"""The switch's two key-value stores as api commands: mod_hash's `hash` (memory: gone when the
switch restarts) and mod_db's `db` (the core SQLite file: kept across a restart), with the
replies of FreeSWITCH 1.10.12 byte for byte (mod_hash.c:473-565, mod_db.c:348-463).

Both take `verb/realm/key[/value]`, split on `/` into at most four parts (the value keeps any
further `/`). mod_hash stores under `<realm>_<key>`; mod_db keys rows by (realm, key).
"""

HASH_USAGE = '-ERR Usage: hash insert|insert_ifempty|select|delete|delete_ifmatch/realm/key[/value]\n'
DB_ERROR = '!err!'  # mod_db answers every usage error with this, no newline
DB_SELECT_MAX = 255  # mod_db's select reads into char buf[256]


def hash_api(store, args):
    """`hash insert|insert_ifempty|select|delete|delete_ifmatch/realm/key[/value]` on `store`
    (a dict). select answers the value with no newline, or nothing when the key is unset."""
    argv = _separate(args)
    if len(argv) < 3 or not argv[0]:
        return HASH_USAGE
    verb, key = argv[0].lower(), '%s_%s' % (argv[1], argv[2])
    value = argv[3] if len(argv) > 3 else None
    if verb == 'select':
        return store.get(key, '')
    if verb == 'delete':
        return '+OK\n' if store.pop(key, None) is not None else '-ERR Not found\n'
    if value is None or verb not in ('insert', 'insert_ifempty', 'delete_ifmatch'):
        return HASH_USAGE
    if verb == 'insert':
        store[key] = value
        return '+OK\n'
    if verb == 'insert_ifempty':
        if key in store:
            return '-ERR key already exists\n'
        store[key] = value
        return '+OK\n'
    if key not in store:  # delete_ifmatch
        return '-ERR Not found\n'
    if store[key] != value:
        return "-ERR Doesn't match\n"
    del store[key]
    return '+OK\n'


def db_api(store, args):
    """`db insert|delete|select|exists|count|list/realm/key[/value]` on `store`, a dict
    {(realm, key): value}. Replies carry no newline."""
    argv = _separate(args)
    verb = argv[0].lower() if argv and argv[0] else ''
    realm = argv[1] if len(argv) > 1 else None
    key = argv[2] if len(argv) > 2 else None
    if verb == 'insert' and len(argv) == 4:
        store[(realm, key)] = argv[3]
        return '+OK'
    if verb == 'delete' and len(argv) >= 2:
        store.pop((realm, key), None)
        return '+OK'
    if verb in ('select', 'exists') and len(argv) >= 3:
        value = store.get((realm, key), '')[:DB_SELECT_MAX]
        return value if verb == 'select' else ('true' if value else 'false')
    if verb == 'count' and len(argv) < 3:
        return str(len({r for r, _ in store}) if realm is None else sum(r == realm for r, _ in store))
    if verb == 'list' and len(argv) < 3:
        names = [r for r, _ in store] if realm is None else [k for r, k in store if r == realm]
        return ','.join(dict.fromkeys(names))
    return DB_ERROR


def _separate(args):
    """switch_separate_string(args, '/', argv, 4): at most four parts, spaces around each
    stripped; a `/` at the very end starts no part. (Its quote and backslash handling is not
    modelled: nothing we send has either.)"""
    parts = args.split('/', 3) if args else []
    if parts and not parts[-1]:
        parts.pop()
    return [part.strip(' ') for part in parts]
