#!/usr/bin/env bash
# Build CodeTune Studio.app and a dmg on macOS (not built here: needs a Mac with Xcode's tools).
#
#   make setup TORCH=cpu && packaging/macos/build-app.sh
#
# PyInstaller's BUNDLE step wraps the one-folder build in an .app (macOS's own layout, with the
# Info.plist below); hdiutil then makes a compressed dmg with an Applications shortcut. Apple
# silicon trains on the GPU through PyTorch's MPS backend; the CPU wheel from PyPI includes it.
# User data stays in ~/Library/Application Support/codetune-studio (platformdirs), outside the
# .app, so replacing the app loses nothing. Signing and notarisation need a Developer ID:
#   codesign --deep --force --options runtime --sign "Developer ID Application: ..." dist/CodeTune\ Studio.app
#   xcrun notarytool submit dist/CodeTune-Studio-*.dmg --keychain-profile ... --wait
set -euo pipefail
cd "$(dirname "$0")/../.."
version=$(sed -n 's/^__version__ = "\(.*\)"/\1/p' app/codetune_studio/__init__.py)
arch=$(uname -m)

.venv/bin/python -c "import PyInstaller" 2>/dev/null || .venv/bin/python -m pip install "pyinstaller>=6.10"
.venv/bin/python packaging/stage.py record build/package-stage --torch cpu
.venv/bin/python packaging/stage.py starter build/package-stage

# An .icns from the PNG icon (sips and iconutil ship with macOS).
iconset=build/codetune-studio.iconset
rm -rf "$iconset" && mkdir -p "$iconset"
for size in 16 32 64 128 256; do
  sips -z $size $size resources/icons/codetune-studio.png --out "$iconset/icon_${size}x${size}.png" >/dev/null
done
iconutil -c icns "$iconset" -o build/codetune-studio.icns

CODETUNE_PACKAGE_STAGE=build/package-stage CODETUNE_PACKAGE_TORCH=cpu \
CODETUNE_PACKAGE_MACOS_APP=1 CODETUNE_PACKAGE_ICNS=build/codetune-studio.icns CODETUNE_PACKAGE_VERSION="$version" \
  .venv/bin/pyinstaller --noconfirm --distpath dist --workpath build/pyinstaller \
  packaging/codetune-studio.spec

app="dist/CodeTune Studio.app"
[ -d "$app" ] || { echo "PyInstaller made no $app" >&2; exit 1; }
# The starter model beside the code (sys._MEIPASS is Contents/Frameworks in a PyInstaller .app).
mkdir -p "$app/Contents/Frameworks/models"
cp -R build/package-stage/models/starter-v2 "$app/Contents/Frameworks/models/"
dmg_root=build/dmg
rm -rf "$dmg_root" && mkdir -p "$dmg_root"
cp -R "$app" "$dmg_root/"
ln -s /Applications "$dmg_root/Applications"
hdiutil create -volname "CodeTune Studio" -srcfolder "$dmg_root" -ov -format UDZO \
  "dist/CodeTune-Studio-$version-macos-$arch.dmg"
echo "built dist/CodeTune-Studio-$version-macos-$arch.dmg"
