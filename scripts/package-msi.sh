#!/usr/bin/env bash
# Builds build/packages/devstreams-<version>-x64.msi with Debian's wixl (msitools) from
# packaging/msi/: cross-builds the programs (scripts/build-windows.sh), strips them into a
# staging folder and links the installer. See docs/windows.md.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
bash scripts/build-windows.sh devstreamsd devstreams devstreams-agent devstreams-tray
version=$(sed -n 's/^project(devstreams VERSION \([0-9.]*\).*/\1/p' CMakeLists.txt)
out=$root/build/packages
stage=$root/build/windows/msi-stage
rm -rf "$stage"
mkdir -p "$stage" "$out"
for exe in daemon/devstreamsd cli/devstreams agent/devstreams-agent tray/devstreams-tray; do
  x86_64-w64-mingw32-strip -o "$stage/$(basename $exe).exe" "build/windows/src/$exe.exe"
done
cp packaging/msi/devstreams.yaml "$stage/"
msi=$out/devstreams-$version-x64.msi
rm -f "$msi"
# wixl takes sources relative to the working folder.
(cd "$stage" && wixl --arch x64 -D Version="$version" -D BinDir=. -D DefaultConfig=devstreams.yaml \
  -o "$msi" "$root/packaging/msi/devstreams.wxs")

# What wixl 0.101 cannot express, added to its tables with msibuild:
# - the Config component is NeverOverwrite (128) and Permanent (16), besides 64-bit (256);
# - the CLI's folder is appended to the system PATH on install and taken off on removal
#   (the Environment table, as WiX writes <Environment Action="set" Part="last" System="yes">),
#   with the standard actions that apply it.
q() { msibuild "$msi" -q "$1"; }
[ "$(msiinfo export "$msi" Component | awk '$1 == "Config" {print $4}')" = 256 ] || {
  echo "package-msi: unexpected attributes of the Config component" >&2
  exit 1
}
q "UPDATE \`Component\` SET \`Attributes\` = 400 WHERE \`Component\` = 'Config'"
q "CREATE TABLE \`Environment\` (\`Environment\` CHAR(72) NOT NULL, \`Name\` CHAR(255) NOT NULL LOCALIZABLE, \`Value\` CHAR(255) LOCALIZABLE, \`Component_\` CHAR(72) NOT NULL PRIMARY KEY \`Environment\`)"
q "INSERT INTO \`Environment\` (\`Environment\`, \`Name\`, \`Value\`, \`Component_\`) VALUES ('PathEntry', '=-*PATH', '[~];[INSTALLFOLDER]', 'Cli')"
q "INSERT INTO \`InstallExecuteSequence\` (\`Action\`, \`Sequence\`) VALUES ('RemoveEnvironmentStrings', 3300)"
q "INSERT INTO \`InstallExecuteSequence\` (\`Action\`, \`Sequence\`) VALUES ('WriteEnvironmentStrings', 5200)"
echo "package-msi: $msi"
