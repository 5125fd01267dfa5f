#!/bin/sh
# Add CodeTune Studio to the desktop's application menu (per user; no root needed).
# Run it from the unpacked folder: ./install-desktop-entry.sh   (--remove to take it out again)
set -eu
here=$(cd "$(dirname "$0")" && pwd)
apps="${XDG_DATA_HOME:-$HOME/.local/share}/applications"
icons="${XDG_DATA_HOME:-$HOME/.local/share}/icons/hicolor/256x256/apps"
if [ "${1:-}" = "--remove" ]; then
  rm -f "$apps/codetune-studio.desktop" "$icons/codetune-studio.png"
  echo "Removed the CodeTune Studio menu entry."
  exit 0
fi
mkdir -p "$apps" "$icons"
cp "$here/codetune-studio.png" "$icons/codetune-studio.png"
sed -e "s|@EXEC@|\"$here/codetune-studio\"|" -e "s|@ICON@|codetune-studio|" \
  "$here/codetune-studio.desktop" > "$apps/codetune-studio.desktop"
chmod +x "$apps/codetune-studio.desktop"
command -v update-desktop-database >/dev/null 2>&1 && update-desktop-database "$apps" || true
echo "Added CodeTune Studio to the application menu ($apps/codetune-studio.desktop)."
