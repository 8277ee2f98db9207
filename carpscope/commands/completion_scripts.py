"""Shell completion scripts, generated from the argument parser (so they follow every option).

    carpscope completion bash > /etc/bash_completion.d/carpscope
    carpscope completion zsh  > ~/.zfunc/_carpscope     # zsh, through bashcompinit

Completes commands, each command's options, the values of options with fixed choices
(``--format``, ``--fail-on``, ``--tz``, ...), rule slugs after ``rules``, interface names after
``sniff`` and file names elsewhere.
"""
from __future__ import annotations

import argparse
import shlex


def _words(p: argparse.ArgumentParser) -> tuple[list[str], dict[str, list[str]]]:
    opts, choices = [], {}
    for a in p._actions:
        opts += [o for o in a.option_strings if o.startswith("--") or len(a.option_strings) == 1]
        if a.option_strings and a.choices:
            for o in a.option_strings:
                choices[o] = [str(c) for c in a.choices]
    return opts, choices


def bash(parser: argparse.ArgumentParser, commands: dict[str, argparse.ArgumentParser]) -> str:
    from carpscope.rules import catalogue
    lines = ["# bash completion for carpscope (generated: carpscope completion bash)",
             "_carpscope() {",
             '  local cur prev cmd i',
             '  cur="${COMP_WORDS[COMP_CWORD]}"; prev="${COMP_WORDS[COMP_CWORD-1]}"; cmd=""',
             '  for ((i=1; i<COMP_CWORD; i++)); do case "${COMP_WORDS[i]}" in -*) ;; *) cmd="${COMP_WORDS[i]}"; break;; esac; done',
             '  if [[ -z "$cmd" ]]; then',
             f'    COMPREPLY=($(compgen -W {shlex.quote(" ".join([*commands, "--help", "--version"]))} -- "$cur")); return',
             "  fi",
             '  case "$cmd" in']
    for name, sub in commands.items():
        opts, choices = _words(sub)
        lines.append(f"    {name})")
        lines.append('      case "$prev" in')
        for opt, vals in sorted(choices.items()):
            lines.append(f'        {opt}) COMPREPLY=($(compgen -W {shlex.quote(" ".join(vals))} -- "$cur")); return;;')
        lines.append("      esac")
        lines.append(f'      if [[ "$cur" == -* ]]; then COMPREPLY=($(compgen -W {shlex.quote(" ".join(opts))} -- "$cur")); return; fi')
        if name == "rules":
            slugs = " ".join(sorted(catalogue()))
            lines.append(f'      COMPREPLY=($(compgen -W {shlex.quote(slugs)} -- "$cur")); return;;')
        elif name == "sniff":
            lines.append('      COMPREPLY=($(compgen -W "$(ls /sys/class/net 2>/dev/null) any" -- "$cur")); return;;')
        else:
            lines.append('      COMPREPLY=($(compgen -f -- "$cur")); return;;')
    lines += ["  esac", "}", "complete -o filenames -F _carpscope carpscope", ""]
    return "\n".join(lines)


def zsh(parser: argparse.ArgumentParser, commands: dict[str, argparse.ArgumentParser]) -> str:
    return ("#compdef carpscope\n# zsh completion for carpscope (generated: carpscope completion zsh)\n"
            "autoload -U +X bashcompinit && bashcompinit\n" + bash(parser, commands))
