"""Generated from proto/ by scripts/generate.sh. Do not edit."""
