# azd postdeploy hook (Windows): same as postdeploy.sh, runs `streamduck verify` against the deployment that
# `azd deploy` just updated and fails when a test event does not land. Extra arguments for `streamduck verify`
# go in STREAMDUCK_VERIFY_ARGS. Set STREAMDUCK_VERIFY_ON_DEPLOY=false to skip the check.
$ErrorActionPreference = 'Stop'

if ("$env:STREAMDUCK_VERIFY_ON_DEPLOY".ToLowerInvariant() -eq 'false') {
    Write-Host 'postdeploy: STREAMDUCK_VERIFY_ON_DEPLOY=false, streamduck verify skipped'
    exit 0
}

$root = Resolve-Path (Join-Path $PSScriptRoot '..\..')

$streamduck = Get-Command streamduck -ErrorAction SilentlyContinue
$streamduckPath = if ($streamduck) { $streamduck.Source } else { $null }
if (-not $streamduckPath) {
    $inVenv = Join-Path $root '.venv\Scripts\streamduck.exe'
    if (Test-Path $inVenv) { $streamduckPath = $inVenv }
}
if (-not $streamduckPath) {
    [Console]::Error.WriteLine('postdeploy: the streamduck CLI is not installed, so the deployment could not be verified.')
    [Console]::Error.WriteLine("  Install it (Python 3.13) in this folder:  py -3.13 -m venv .venv; .venv\Scripts\pip install -e '.[local]'")
    [Console]::Error.WriteLine("  (or, in an active virtual environment:   pip install -e '.[local]'), then run: azd hooks run postdeploy")
    [Console]::Error.WriteLine('  To deploy without the check:              azd env set STREAMDUCK_VERIFY_ON_DEPLOY false')
    exit 1
}

$python = Get-Command python3 -ErrorAction SilentlyContinue
if (-not $python) { $python = Get-Command python -ErrorAction SilentlyContinue }
if (-not $python) {
    [Console]::Error.WriteLine('postdeploy: python not found; cannot read the azd environment for streamduck verify')
    exit 1
}

# STREAMDUCK_VERIFY_ARGS is split on blanks: it holds options such as "--json --timeout 300".
$verifyArgs = @("$env:STREAMDUCK_VERIFY_ARGS" -split '\s+' | Where-Object { $_ })
azd env get-values --output json | & $python.Source (Join-Path $root 'infra\hooks\verify_deployment.py') $streamduckPath @verifyArgs
exit $LASTEXITCODE
