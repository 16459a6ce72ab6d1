# azd postprovision hook (Windows): same as postprovision.sh, writes local.settings.json for `func start`
# against the provisioned resources. Set STREAMDUCK_SKIP_LOCAL_SETTINGS=true to skip it.
$ErrorActionPreference = 'Stop'

if ($env:STREAMDUCK_SKIP_LOCAL_SETTINGS -eq 'true') {
    Write-Host 'postprovision: STREAMDUCK_SKIP_LOCAL_SETTINGS=true, local.settings.json left alone'
    exit 0
}

$python = Get-Command python3 -ErrorAction SilentlyContinue
if (-not $python) { $python = Get-Command python -ErrorAction SilentlyContinue }
if (-not $python) {
    Write-Warning 'postprovision: python not found; local.settings.json not written'
    exit 0
}

$root = Resolve-Path (Join-Path $PSScriptRoot '..\..')
azd env get-values --output json | & $python.Source (Join-Path $root 'infra\hooks\write_local_settings.py') (Join-Path $root 'local.settings.json')
exit $LASTEXITCODE
