#!/usr/bin/env pwsh
<#
.SYNOPSIS
    Deep health check of the Mr Hux Alpha Bot monitoring stack.

.DESCRIPTION
    A thin wrapper: runs `python -m hux.cli health` with the project's virtualenv
    (created by `python scripts/setup_monitoring.py`). Every check reports
    pass / warn / fail with the reason and the fix. The exit code is 0 when
    nothing fails (warnings allowed), 1 when a check fails, 2 on a usage or
    configuration error. scripts/run_monitoring_health.sh is the POSIX twin.

.PARAMETER Json
    Print JSON for machines instead of the table.

.EXAMPLE
    ./scripts/run_monitoring_health.ps1
.EXAMPLE
    ./scripts/run_monitoring_health.ps1 -Json
#>
param(
    [switch]$Json,
    [Parameter(ValueFromRemainingArguments = $true)]
    [string[]]$Rest
)

$ErrorActionPreference = 'Stop'
$root = Split-Path -Parent $PSScriptRoot
$python = @(
    (Join-Path $root '.venv/bin/python'),          # Linux, macOS
    (Join-Path $root '.venv/Scripts/python.exe')   # Windows
) | Where-Object { Test-Path $_ } | Select-Object -First 1

if (-not $python) {
    [Console]::Error.WriteLine("run_monitoring_health: no virtualenv under $root/.venv; set the project up first: python scripts/setup_monitoring.py")
    exit 2
}

$arguments = @('-m', 'hux.cli', 'health')
if ($Json) { $arguments += '--json' }
if ($Rest) { $arguments += $Rest }

# The stack's home is the checkout (unless HUX_HOME says otherwise), as for setup_monitoring.py.
Push-Location $root
try {
    & $python @arguments
    $code = $LASTEXITCODE
}
finally {
    Pop-Location
}
exit $code
