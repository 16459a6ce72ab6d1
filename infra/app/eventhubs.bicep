// Event Hubs namespace of the Event Hub -> MotherDuck mappings: one hub per mapping, Entra ID only.
param name string
param location string
param tags object
@description('Mappings (see main.bicep): eventHub, consumerGroup, partitions, retentionHours.')
param mappings array
param workspaceId string
@allowed([
  'Enabled'
  'Disabled'
])
param publicNetworkAccess string

resource namespace 'Microsoft.EventHub/namespaces@2024-01-01' = {
  name: name
  location: location
  tags: tags
  sku: {
    name: 'Standard' // consumer groups beyond $Default, 7-day retention, auto-inflate
    tier: 'Standard'
    capacity: 1
  }
  properties: {
    disableLocalAuth: true // no SAS: the app and the deployer use Entra ID roles
    minimumTlsVersion: '1.2'
    publicNetworkAccess: publicNetworkAccess
    isAutoInflateEnabled: true
    maximumThroughputUnits: 4
    zoneRedundant: true
  }
}

resource networkRules 'Microsoft.EventHub/namespaces/networkRuleSets@2024-01-01' = {
  parent: namespace
  name: 'default'
  properties: {
    publicNetworkAccess: publicNetworkAccess
    defaultAction: publicNetworkAccess == 'Enabled' ? 'Allow' : 'Deny'
    trustedServiceAccessEnabled: true
  }
}

// A module per hub, so that the consumer group is created only when it is not the built-in $Default.
module hubs 'eventhub.bicep' = [for (m, i) in mappings: {
  name: 'hub-${i + 1}'
  params: {
    namespaceName: namespace.name
    hubName: m.eventHub
    partitions: m.?partitions ?? 4
    retentionHours: m.?retentionHours ?? 24
    consumerGroup: m.consumerGroup
  }
}]

resource diagnostics 'Microsoft.Insights/diagnosticSettings@2021-05-01-preview' = {
  name: 'to-log-analytics'
  scope: namespace
  properties: {
    workspaceId: workspaceId
    logs: [
      {
        categoryGroup: 'allLogs'
        enabled: true
      }
    ]
    metrics: [
      {
        category: 'AllMetrics'
        enabled: true
      }
    ]
  }
}

output id string = namespace.id
output name string = namespace.name
output fqdn string = '${namespace.name}.servicebus.windows.net'
