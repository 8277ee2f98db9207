"""Renderers over one Report: text (rich), json, jsonl. Nothing else in carpscope prints."""
