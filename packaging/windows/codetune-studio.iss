; Inno Setup script for the Windows installer of CodeTune Studio (not built here: needs Windows).
;
; 1. On Windows, in the checkout:  make setup TORCH=cpu   (or TORCH=cuda for the NVIDIA build)
; 2. Build the folder:              .venv\Scripts\python packaging\stage.py record build\package-stage --torch cpu
;                                   .venv\Scripts\pyinstaller --noconfirm --distpath dist ^
;                                     --workpath build\pyinstaller packaging\codetune-studio.spec
;                                   .venv\Scripts\python packaging\stage.py starter build\package-stage
;                                   xcopy /E /I build\package-stage\models\starter-v2 ^
;                                     dist\codetune-studio\_internal\models\starter-v2
; 3. Compile this script:           iscc /DAppVersion=0.1.0 /DTorchBuild=cpu packaging\windows\codetune-studio.iss
; The installer lands in dist\ as CodeTuneStudio-<version>-windows-x64-<torch>-setup.exe.
; User data stays in %LOCALAPPDATA%\codetune-studio (platformdirs), outside the install folder,
; so an upgrade or uninstall never touches settings, the database or trained models.

#ifndef AppVersion
  #define AppVersion "0.1.0"
#endif
#ifndef TorchBuild
  #define TorchBuild "cpu"
#endif

[Setup]
AppId={{6B0E5A86-3F5D-4C8B-9D1E-2C7A0F4B9E31}
AppName=CodeTune Studio
AppVersion={#AppVersion}
AppPublisher=CodeTune Studio developers
DefaultDirName={autopf}\CodeTune Studio
DefaultGroupName=CodeTune Studio
; Per-user install by default (no admin prompt); the dialog lets an admin install for everyone.
PrivilegesRequired=lowest
PrivilegesRequiredOverridesAllowed=dialog
ArchitecturesAllowed=x64compatible
ArchitecturesInstallIn64BitMode=x64compatible
OutputDir=..\..\dist
OutputBaseFilename=CodeTuneStudio-{#AppVersion}-windows-x64-{#TorchBuild}-setup
Compression=lzma2/max
SolidCompression=yes
; torch alone is several hundred MB; a disk-spanning installer is not wanted.
DiskSpanning=no
LicenseFile=..\..\LICENSE
SetupIconFile=codetune-studio.ico
UninstallDisplayIcon={app}\codetune-studio.exe
WizardStyle=modern

[Tasks]
Name: "desktopicon"; Description: "{cm:CreateDesktopIcon}"; GroupDescription: "{cm:AdditionalIcons}"; Flags: unchecked

[Files]
; The whole PyInstaller one-folder build.
Source: "..\..\dist\codetune-studio\*"; DestDir: "{app}"; Flags: ignoreversion recursesubdirs createallsubdirs

[Icons]
Name: "{group}\CodeTune Studio"; Filename: "{app}\codetune-studio.exe"
Name: "{group}\Uninstall CodeTune Studio"; Filename: "{uninstallexe}"
Name: "{autodesktop}\CodeTune Studio"; Filename: "{app}\codetune-studio.exe"; Tasks: desktopicon

[Run]
Filename: "{app}\codetune-studio.exe"; Description: "{cm:LaunchProgram,CodeTune Studio}"; Flags: nowait postinstall skipifsilent
