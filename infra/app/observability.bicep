// Azure Monitor workbook (ingestion rate, failures, retries, dead letters, backlog) and alert rules for
// failures and dead-letter growth. Log-based signals come from the app's log lines (docs/deploy.md).
param location string
param tags object
param namePrefix string
param workspaceId string
param appInsightsId string
param eventHubsNamespaceId string
@description('Kafka namespace; empty with kafkaMode external.')
param kafkaNamespaceId string
param functionAppName string
@description('E-mail address for alert notifications; empty sends none (alerts still fire in the portal).')
param alertEmail string
@minValue(0)
@description('Failed invocations in 15 minutes above which the failure alert fires.')
param failureThreshold int = 0

var namespaceIdsJson = empty(kafkaNamespaceId) ? '"${eventHubsNamespaceId}"' : '"${eventHubsNamespaceId}", "${kafkaNamespaceId}"'
var workbookTemplate = loadTextContent('workbook.json')
var workbookContent = replace(replace(workbookTemplate, '"__EVENTHUB_NAMESPACE_IDS__"', namespaceIdsJson), '__WORKSPACE_ID__', workspaceId)
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

// Any failed invocation (after the host's retries gave up or while they run) is worth a look.
resource failureAlert 'Microsoft.Insights/scheduledQueryRules@2023-12-01' = {
  name: 'alert-${namePrefix}-failures'
  location: location
  tags: tags
  properties: {
    displayName: 'StreamDuck: failed function invocations'
    description: 'Function invocations of ${functionAppName} failed in the last 15 minutes (transient sink errors are retried; see the workbook).'
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
          query: 'AppRequests | where Success == false'
          timeAggregation: 'Count'
          operator: 'GreaterThan'
          threshold: failureThreshold
          dimensions: [
            {
              name: 'Name'
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

// Dead letters are bad input parked durably; any growth means a producer sends something StreamDuck rejects.
resource deadLetterAlert 'Microsoft.Insights/scheduledQueryRules@2023-12-01' = {
  name: 'alert-${namePrefix}-dead-letters'
  location: location
  tags: tags
  properties: {
    displayName: 'StreamDuck: dead-letter growth'
    description: 'Events of ${functionAppName} were parked in a dead-letter table in the last 15 minutes.'
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
          query: 'AppTraces | where Message has "dead-lettered" | extend deadLettered = toint(extract(@"(\\d+) dead-lettered", 1, Message)) | where deadLettered > 0'
          timeAggregation: 'Total'
          metricMeasureColumn: 'deadLettered'
          operator: 'GreaterThan'
          threshold: 0
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
