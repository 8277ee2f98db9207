"""``carpscope inventory CONFIG...``: configurations converted into a TOML inventory (secrets
left as references)."""
from __future__ import annotations

from carpscope.commands import EXIT_OK, UsageError
from carpscope.commands.output import prepare_outputs, write


def run(args) -> int:
    from carpscope.config import ConfigError, inventory_from_configs, inventory_to_toml
    prepare_outputs(args)
    try:
        inv = inventory_from_configs(args.configs)
    except ConfigError as e:
        raise UsageError(str(e)) from None
    except OSError as e:
        raise UsageError(f"{getattr(e, 'filename', '')}: {e.strerror or e}") from None
    write(args, inventory_to_toml(inv))
    return EXIT_OK
