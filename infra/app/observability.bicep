// Azure Monitor workbook and alert rules over StreamDuck's OpenTelemetry metrics.
//
// Every query reads the metrics the code emits (shared/telemetry/catalog.py: names, units, attributes) from the
// workspace table AppMetrics (Name, Sum, ItemCount, Min, Max, Properties; Application Insights shows the same
// rows as customMetrics), never log lines. tests/infra/test_infra_metrics_drift.py checks that every metric
// name and attribute key used here and in workbook.json is in the catalog, and every catalog metric is used.
// Counters arrive as deltas (Sum = count in the export interval), histograms with Sum/ItemCount/Min/Max,
// gauges with their last value in Sum.
// https://learn.microsoft.com/azure/azure-monitor/reference/tables/appmetrics
// https://learn.microsoft.com/azure/azure-monitor/app/opentelemetry-add-modify#add-custom-metrics
param location string
param tags object
param namePrefix string
param workspaceId string
param appInsightsId string
param functionAppName string
@description('E-mail address for alert notifications; empty sends none (alerts still fire in the portal).')
param alertEmail string
@minValue(0)
@description('Failed timer job runs in 15 minutes above which the job failure alert fires.')
param failureThreshold int = 0
@minValue(1)
@description('End-to-end lag in seconds (Event Hubs or Kafka, streamduck.*.lag) above which the lag alert fires.')
param lagThresholdSeconds int = 300
@allowed([
  10
  15
  30
  45
])
@description('Minutes with events received but none written (or dead-lettered or replayed) before a mapping counts as stalled.')
param stalledMinutes int = 15

var workbookTemplate = loadTextContent('workbook.json')
var workbookContent = replace(workbookTemplate, '__WORKSPACE_ID__', workspaceId)
var alertActions = empty(alertEmail) ? [] : [
  actionGroup.id
]

resource actionGroup 'Microsoft.Insights/actionGroups@2023-01-01' = if (!empty(alertEmail)) {
  name: 'ag-${namePrefix}'
  location: 'global'
  tags: tags
  properties: {
    groupShortName: 'streamduck'
    enabled: true
    emailReceivers: [
      {
        name: 'operator'
        emailAddress: alertEmail
        useCommonAlertSchema: true
      }
    ]
  }
}

resource workbook 'Microsoft.Insights/workbooks@2023-06-01' = {
  name: guid(resourceGroup().id, 'streamduck-workbook')
  location: location
  tags: tags
  kind: 'shared'
  properties: {
    displayName: 'StreamDuck pipeline (${functionAppName})'
    category: 'workbook'
    sourceId: workspaceId
    serializedData: workbookContent
  }
}

// Dead letters are bad input parked durably (DuckDB dead-letter table, ClickHouse engagement_dead_letters);
// any of them means a producer sends something StreamDuck rejects. One alert per source and reason.
resource deadLetterAlert 'Microsoft.Insights/scheduledQueryRules@2023-12-01' = {
  name: 'alert-${namePrefix}-dead-letters'
  location: location
  tags: tags
  properties: {
    displayName: 'StreamDuck: dead-lettered events'
    description: 'Events or CDC records of ${functionAppName} were parked in a dead-letter table in the last 15 minutes (metrics streamduck.eventhubs.events.dead_lettered and streamduck.engagement.dead_letters, by mapping or topic and reason).'
    severity: 3
    enabled: true
    scopes: [
      workspaceId
    ]
    evaluationFrequency: 'PT5M'
    windowSize: 'PT15M'
    criteria: {
      allOf: [
        {
          query: 'AppMetrics\n| where Name in ("streamduck.eventhubs.events.dead_lettered", "streamduck.engagement.dead_letters")\n| extend source = coalesce(tostring(Properties["streamduck.mapping"]), tostring(Properties["streamduck.topic"])), reason = tostring(Properties["streamduck.reason"])\n| project TimeGenerated, source, reason, deadLettered = Sum'
          timeAggregation: 'Total'
          metricMeasureColumn: 'deadLettered'
          operator: 'GreaterThan'
          threshold: 0
          dimensions: [
            {
              name: 'source'
              operator: 'Include'
              values: [
                '*'
              ]
            }
            {
              name: 'reason'
              operator: 'Include'
              values: [
                '*'
              ]
            }
          ]
          failingPeriods: {
            numberOfEvaluationPeriods: 1
            minFailingPeriodsToAlert: 1
          }
        }
      ]
    }
    autoMitigate: true
    actions: {
      actionGroups: alertActions
    }
  }
}

// The app's own lag (commit or processing time minus the newest event's timestamp), per mapping or topic:
// unlike namespace IncomingMessages minus OutgoingMessages it does not count other consumer groups.
resource lagAlert 'Microsoft.Insights/scheduledQueryRules@2023-12-01' = {
  name: 'alert-${namePrefix}-lag'
  location: location
  tags: tags
  properties: {
    displayName: 'StreamDuck: lag above ${lagThresholdSeconds} s'
    description: 'A batch of ${functionAppName} was committed more than ${lagThresholdSeconds} seconds after its newest event was enqueued (metrics streamduck.eventhubs.lag and streamduck.engagement.lag, maximum over 15 minutes).'
    severity: 2
    enabled: true
    scopes: [
      workspaceId
    ]
    evaluationFrequency: 'PT5M'
    windowSize: 'PT15M'
    criteria: {
      allOf: [
        {
          query: 'AppMetrics\n| where Name in ("streamduck.eventhubs.lag", "streamduck.engagement.lag")\n| extend source = coalesce(tostring(Properties["streamduck.mapping"]), tostring(Properties["streamduck.topic"]))\n| project TimeGenerated, source, lagSeconds = Max'
          timeAggregation: 'Maximum'
          metricMeasureColumn: 'lagSeconds'
          operator: 'GreaterThan'
          threshold: lagThresholdSeconds
          dimensions: [
            {
              name: 'source'
              operator: 'Include'
              values: [
                '*'
              ]
            }
          ]
          failingPeriods: {
            numberOfEvaluationPeriods: 1
            minFailingPeriodsToAlert: 1
          }
        }
      ]
    }
    autoMitigate: true
    actions: {
      actionGroups: alertActions
    }
  }
}

// Timer jobs (compaction, leaderboard windows, ClickHouse upkeep) record outcome=error when a run fails.
resource jobFailureAlert 'Microsoft.Insights/scheduledQueryRules@2023-12-01' = {
  name: 'alert-${namePrefix}-job-failures'
  location: location
  tags: tags
  properties: {
    displayName: 'StreamDuck: failed timer job runs'
    description: 'Timer job runs of ${functionAppName} failed in the last 15 minutes (metric streamduck.job.runs with streamduck.outcome = error, by job).'
    severity: 2
    enabled: true
    scopes: [
      workspaceId
    ]
    evaluationFrequency: 'PT5M'
    windowSize: 'PT15M'
    criteria: {
      allOf: [
        {
          query: 'AppMetrics\n| where Name == "streamduck.job.runs" and tostring(Properties["streamduck.outcome"]) == "error"\n| extend job = tostring(Properties["streamduck.job"])\n| project TimeGenerated, job, failedRuns = Sum'
          timeAggregation: 'Total'
          metricMeasureColumn: 'failedRuns'
          operator: 'GreaterThan'
          threshold: failureThreshold
          dimensions: [
            {
              name: 'job'
              operator: 'Include'
              values: [
                '*'
              ]
            }
          ]
          failingPeriods: {
            numberOfEvaluationPeriods: 1
            minFailingPeriodsToAlert: 1
          }
        }
      ]
    }
    autoMitigate: true
    actions: {
      actionGroups: alertActions
    }
  }
}

// A mapping that receives events but commits none for stalledMinutes: the sink fails and the retry policy
// holds the partition (MotherDuck unreachable, a bad token, a schema change). Replays and dead letters are
// not "stalled", so they are subtracted from what was received.
resource stalledAlert 'Microsoft.Insights/scheduledQueryRules@2023-12-01' = {
  name: 'alert-${namePrefix}-stalled'
  location: location
  tags: tags
  properties: {
    displayName: 'StreamDuck: events received but none written for ${stalledMinutes} min'
    description: 'A mapping of ${functionAppName} received events in the last ${stalledMinutes} minutes but wrote none to MotherDuck (metrics streamduck.eventhubs.events.received and .written, by mapping).'
    severity: 1
    enabled: true
    scopes: [
      workspaceId
    ]
    evaluationFrequency: 'PT5M'
    windowSize: 'PT${stalledMinutes}M'
    criteria: {
      allOf: [
        {
          query: 'AppMetrics\n| where Name in ("streamduck.eventhubs.events.received", "streamduck.eventhubs.events.written", "streamduck.eventhubs.events.dead_lettered", "streamduck.eventhubs.events.replayed")\n| extend mapping = tostring(Properties["streamduck.mapping"])\n| summarize received = sumif(Sum, Name == "streamduck.eventhubs.events.received"), written = sumif(Sum, Name == "streamduck.eventhubs.events.written"), parked = sumif(Sum, Name == "streamduck.eventhubs.events.dead_lettered"), replayed = sumif(Sum, Name == "streamduck.eventhubs.events.replayed") by mapping\n| where received - parked - replayed > 0 and written == 0'
          timeAggregation: 'Count'
          operator: 'GreaterThan'
          threshold: 0
          dimensions: [
            {
              name: 'mapping'
              operator: 'Include'
              values: [
                '*'
              ]
            }
          ]
          failingPeriods: {
            numberOfEvaluationPeriods: 1
            minFailingPeriodsToAlert: 1
          }
        }
      ]
    }
    autoMitigate: true
    actions: {
      actionGroups: alertActions
    }
  }
}

output workbookId string = workbook.id
output appInsightsId string = appInsightsId
